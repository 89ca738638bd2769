//! Hand-off to and from other frameworks' tensors without copies.

pub mod candle;
