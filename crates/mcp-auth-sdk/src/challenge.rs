//! challenge (being written).
