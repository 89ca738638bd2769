// Runs the CUDA C kernels of kernels/ on the CPU: every .cu file is compiled
// here as host C++ (shim.h force-included) and each entry point is executed
// over its whole grid.
//
// * Kernels without barriers run their threads one after another (they have
//   no intra-block communication, so any order is a legal schedule).
// * Kernels with __syncthreads (the loss reduction) run each block's threads
//   as OS threads meeting at a std::barrier: every barrier is honoured, and
//   `__shared__` (a static here) is shared by exactly one block at a time
//   because the threads walk the blocks in lockstep, with a barrier between
//   blocks.

#include <barrier>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "../../kernels/noise.cu"
#include "../../kernels/step.cu"
#include "../../kernels/loss.cu"

thread_local uint3 threadIdx, blockIdx, blockDim, gridDim;
static thread_local std::barrier<>* block_barrier = nullptr;
static thread_local bool serial_launch = false;
static thread_local int syncthreads_in_serial = 0;
// `__shared__` is a process-wide static here: one threaded launch at a time
// (tests launch from several threads at once).
static std::mutex shared_memory_owner;

void gfh_syncthreads() {
    if (block_barrier) {
        block_barrier->arrive_and_wait();
    } else if (serial_launch) {
        // A barrier in a serially run kernel would not be honoured: flag it.
        ++syncthreads_in_serial;
    }
}

namespace {

typedef void (*trampoline)(const void*);

struct entry {
    const char* name;
    trampoline fn;
    bool barriers;  // uses __syncthreads: run threads concurrently
};

#define GFH_ENTRY(NAME, ARGS, BARRIERS) \
    { #NAME, [](const void* p) { NAME(*static_cast<const ARGS*>(p)); }, BARRIERS }

const entry entries[] = {
    GFH_ENTRY(gf_noise_f32_v, gf_noise_args, false),  GFH_ENTRY(gf_noise_f32_s, gf_noise_args, false),
    GFH_ENTRY(gf_noise_f16_v, gf_noise_args, false),  GFH_ENTRY(gf_noise_f16_s, gf_noise_args, false),
    GFH_ENTRY(gf_noise_bf16_v, gf_noise_args, false), GFH_ENTRY(gf_noise_bf16_s, gf_noise_args, false),
    GFH_ENTRY(gf_step_f32_v, gf_step_args, false),    GFH_ENTRY(gf_step_f32_s, gf_step_args, false),
    GFH_ENTRY(gf_step_f16_v, gf_step_args, false),    GFH_ENTRY(gf_step_f16_s, gf_step_args, false),
    GFH_ENTRY(gf_step_bf16_v, gf_step_args, false),   GFH_ENTRY(gf_step_bf16_s, gf_step_args, false),
    GFH_ENTRY(gf_step_tree_f32_v, gf_step_args, false),  GFH_ENTRY(gf_step_tree_f32_s, gf_step_args, false),
    GFH_ENTRY(gf_step_tree_f16_v, gf_step_args, false),  GFH_ENTRY(gf_step_tree_f16_s, gf_step_args, false),
    GFH_ENTRY(gf_step_tree_bf16_v, gf_step_args, false), GFH_ENTRY(gf_step_tree_bf16_s, gf_step_args, false),
    GFH_ENTRY(gf_loss_f32_v, gf_loss_args, true),     GFH_ENTRY(gf_loss_f32_s, gf_loss_args, true),
    GFH_ENTRY(gf_loss_f16_v, gf_loss_args, true),     GFH_ENTRY(gf_loss_f16_s, gf_loss_args, true),
    GFH_ENTRY(gf_loss_bf16_v, gf_loss_args, true),    GFH_ENTRY(gf_loss_bf16_s, gf_loss_args, true),
    GFH_ENTRY(gf_loss_finalize, gf_loss_finalize_args, true),
};

void set_block(uint3 grid, unsigned long long linear) {
    blockIdx.x = (unsigned)(linear % grid.x);
    blockIdx.y = (unsigned)((linear / grid.x) % grid.y);
    blockIdx.z = (unsigned)(linear / ((unsigned long long)grid.x * grid.y));
}

void set_thread(uint3 block, unsigned linear) {
    threadIdx.x = linear % block.x;
    threadIdx.y = (linear / block.x) % block.y;
    threadIdx.z = linear / (block.x * block.y);
}

}  // namespace

extern "C" {

// Runs entry point `name` over grid × block with its argument struct.
// threaded: 1 forces OS threads per block (also for barrier-free kernels).
// Returns 0, or -1 for an unknown name, -2 for a barrier met in a serial run.
int gfh_launch(const char* name, const unsigned grid_[3], const unsigned block_[3], const void* args,
               int threaded) {
    const entry* e = nullptr;
    for (const entry& c : entries)
        if (std::strcmp(c.name, name) == 0) e = &c;
    if (!e) return -1;
    const uint3 grid{grid_[0], grid_[1], grid_[2]}, block{block_[0], block_[1], block_[2]};
    const unsigned long long blocks = (unsigned long long)grid.x * grid.y * grid.z;
    const unsigned threads = block.x * block.y * block.z;
    if (!(e->barriers || threaded)) {
        syncthreads_in_serial = 0;
        serial_launch = true;
        gridDim = grid;
        blockDim = block;
        for (unsigned long long b = 0; b < blocks; ++b) {
            set_block(grid, b);
            for (unsigned t = 0; t < threads; ++t) {
                set_thread(block, t);
                e->fn(args);
            }
        }
        serial_launch = false;
        return syncthreads_in_serial ? -2 : 0;
    }
    const std::lock_guard<std::mutex> own(shared_memory_owner);
    std::barrier<> bar((std::ptrdiff_t)threads);
    std::vector<std::thread> pool;
    pool.reserve(threads);
    for (unsigned t = 0; t < threads; ++t) {
        pool.emplace_back([&, t] {
            block_barrier = &bar;
            gridDim = grid;
            blockDim = block;
            set_thread(block, t);
            for (unsigned long long b = 0; b < blocks; ++b) {
                set_block(grid, b);
                e->fn(args);
                bar.arrive_and_wait();  // the block is done before the next one uses __shared__
            }
            block_barrier = nullptr;
        });
    }
    for (std::thread& th : pool) th.join();
    return 0;
}

// Names of every entry point, space separated (to check none is left untested).
const char* gfh_entry_points() {
    static std::string names;
    if (names.empty())
        for (const entry& c : entries) names += std::string(c.name) + " ";
    return names.c_str();
}

// "struct size field offset field offset ...\n" for each argument struct.
const char* gfh_layouts() {
    static std::string s;
    if (!s.empty()) return s.c_str();
    char buf[128];
#define GFH_STRUCT(T) (s += #T, std::snprintf(buf, sizeof buf, " %zu", sizeof(T)), s += buf)
#define GFH_FIELD(T, F) (std::snprintf(buf, sizeof buf, " %s %zu", #F, offsetof(T, F)), s += buf)
    GFH_STRUCT(gf_noise_src);
    GFH_FIELD(gf_noise_src, buf); GFH_FIELD(gf_noise_src, ids); GFH_FIELD(gf_noise_src, id_offset);
    GFH_FIELD(gf_noise_src, key_lo); GFH_FIELD(gf_noise_src, key_hi); GFH_FIELD(gf_noise_src, stream);
    GFH_FIELD(gf_noise_src, domain); GFH_FIELD(gf_noise_src, enabled); GFH_FIELD(gf_noise_src, bm);
    s += "\n";
    GFH_STRUCT(gf_noise_args);
    GFH_FIELD(gf_noise_args, x); GFH_FIELD(gf_noise_args, z); GFH_FIELD(gf_noise_args, target);
    GFH_FIELD(gf_noise_args, rows); GFH_FIELD(gf_noise_args, row_stride); GFH_FIELD(gf_noise_args, batch);
    GFH_FIELD(gf_noise_args, dim); GFH_FIELD(gf_noise_args, noise); GFH_FIELD(gf_noise_args, row0);
    s += "\n";
    GFH_STRUCT(gf_step_args);
    GFH_FIELD(gf_step_args, in); GFH_FIELD(gf_step_args, out); GFH_FIELD(gf_step_args, x_hat);
    GFH_FIELD(gf_step_args, rows); GFH_FIELD(gf_step_args, row_stride); GFH_FIELD(gf_step_args, batch);
    GFH_FIELD(gf_step_args, dim); GFH_FIELD(gf_step_args, noise); GFH_FIELD(gf_step_args, row0);
    s += "\n";
    GFH_STRUCT(gf_loss_args);
    GFH_FIELD(gf_loss_args, pred); GFH_FIELD(gf_loss_args, target); GFH_FIELD(gf_loss_args, x);
    GFH_FIELD(gf_loss_args, grad); GFH_FIELD(gf_loss_args, partials); GFH_FIELD(gf_loss_args, rows);
    GFH_FIELD(gf_loss_args, row_stride); GFH_FIELD(gf_loss_args, batch); GFH_FIELD(gf_loss_args, dim);
    GFH_FIELD(gf_loss_args, chunks); GFH_FIELD(gf_loss_args, noise); GFH_FIELD(gf_loss_args, row0);
    s += "\n";
    GFH_STRUCT(gf_loss_finalize_args);
    GFH_FIELD(gf_loss_finalize_args, partials); GFH_FIELD(gf_loss_finalize_args, loss);
    GFH_FIELD(gf_loss_finalize_args, rows); GFH_FIELD(gf_loss_finalize_args, row_stride);
    GFH_FIELD(gf_loss_finalize_args, batch); GFH_FIELD(gf_loss_finalize_args, dim);
    GFH_FIELD(gf_loss_finalize_args, chunks); GFH_FIELD(gf_loss_finalize_args, row0);
    s += "\n";
    GFH_STRUCT(gf_step_row);
    GFH_FIELD(gf_step_row, x_hat); GFH_FIELD(gf_step_row, out); GFH_FIELD(gf_step_row, out_x_hat);
    GFH_FIELD(gf_step_row, noise); GFH_FIELD(gf_step_row, clip);
    s += "\n";
    return s.c_str();
}

// The header's scalar functions, for bit-exact comparison with src/rng.rs.
void gfh_philox(const unsigned* ctr, const unsigned* key, unsigned* out) {
    const uint4 r = gf_philox(make_uint4(ctr[0], ctr[1], ctr[2], ctr[3]), key[0], key[1]);
    out[0] = r.x; out[1] = r.y; out[2] = r.z; out[3] = r.w;
}
void gfh_ln(const float* in, float* out, size_t n) {
    for (size_t i = 0; i < n; ++i) out[i] = gf_ln(in[i]);
}
void gfh_sincos_2pi(const float* u, float* s, float* c, size_t n) {
    for (size_t i = 0; i < n; ++i) gf_sincos_2pi(u[i], &s[i], &c[i]);
}
void gfh_uniform(const unsigned* r, float* out, size_t n) {
    for (size_t i = 0; i < n; ++i) out[i] = gf_uniform(r[i]);
}
void gfh_box_muller(const unsigned* r, float* out, size_t blocks) {
    for (size_t i = 0; i < blocks; ++i)
        gf_box_muller(make_uint4(r[4 * i], r[4 * i + 1], r[4 * i + 2], r[4 * i + 3]), out + 4 * i);
}
void gfh_f32_to_f16(const float* in, unsigned short* out, size_t n) {
    for (size_t i = 0; i < n; ++i) out[i] = gf_f16::store(in[i]);
}
void gfh_f16_to_f32(const unsigned short* in, float* out, size_t n) {
    for (size_t i = 0; i < n; ++i) out[i] = gf_f16::load(in[i]);
}
void gfh_f32_to_bf16(const float* in, unsigned short* out, size_t n) {
    for (size_t i = 0; i < n; ++i) out[i] = gf_bf16::store(in[i]);
}

}  // extern "C"
