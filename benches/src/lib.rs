//! Criterion benches of zio's hot paths live in `benches/`.
