//! Helpers for running programs with and without zio (see tests/).
