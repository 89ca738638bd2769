//! Keeps adapter probing off the caller's stderr on headless Linux.
//!
//! Mesa's Vulkan device-selection layer (an implicit layer that the Vulkan
//! loader puts in front of every driver, lavapipe included) looks for a
//! Wayland compositor while the adapters are enumerated, through
//! `wl_display_connect`. Where `XDG_RUNTIME_DIR` is unset or not a
//! directory, libwayland-client reports that on stderr — "error:
//! XDG_RUNTIME_DIR is invalid or not set in the environment." — once per
//! probe, in a program that never asked for a window. A library must not
//! write to its caller's terminal, and changing the environment from a
//! library is not sound once other threads run, so instead, in exactly
//! that situation, gaussflow gives libwayland-client a log handler that
//! drops its messages. Nothing that could connect is affected: without a
//! usable `XDG_RUNTIME_DIR`, a Wayland connection in this process can only
//! come from `WAYLAND_SOCKET` or an absolute `WAYLAND_DISPLAY`, and then
//! the handler is left alone.

/// Installs the silent Wayland log handler if, and only if, no Wayland
/// connection is possible in this process; at most once.
#[cfg(target_os = "linux")]
pub(super) fn silence_futile_wayland_probe() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let runtime_dir_usable =
            std::env::var_os("XDG_RUNTIME_DIR").is_some_and(|d| std::path::Path::new(&d).is_dir());
        let explicit_connection = std::env::var_os("WAYLAND_SOCKET").is_some()
            || std::env::var_os("WAYLAND_DISPLAY")
                .is_some_and(|d| std::path::Path::new(&d).is_absolute());
        if runtime_dir_usable || explicit_connection {
            return;
        }
        /// `void handler(const char *fmt, va_list args)`: ignores both, so
        /// the va_list's ABI (a pointer on x86-64 and AArch64) never matters.
        extern "C" fn drop_message(_fmt: *const libc::c_char, _args: *mut libc::c_void) {}
        type SetHandler =
            unsafe extern "C" fn(extern "C" fn(*const libc::c_char, *mut libc::c_void));
        // SAFETY: dlopen/dlsym with NUL-terminated names; the library stays
        // loaded (never dlclose'd), so the layer that loads it later gets
        // this same instance and the handler stays valid for the process;
        // `wl_log_set_handler_client` has the signature of `SetHandler`.
        unsafe {
            let lib = libc::dlopen(
                c"libwayland-client.so.0".as_ptr(),
                libc::RTLD_NOW | libc::RTLD_LOCAL,
            );
            if lib.is_null() {
                return; // no libwayland-client: nothing can print
            }
            let sym = libc::dlsym(lib, c"wl_log_set_handler_client".as_ptr());
            if !sym.is_null() {
                let set: SetHandler = std::mem::transmute::<*mut libc::c_void, SetHandler>(sym);
                set(drop_message);
            }
        }
    });
}

/// Nothing to silence off Linux.
#[cfg(not(target_os = "linux"))]
pub(super) fn silence_futile_wayland_probe() {}
