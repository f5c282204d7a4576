//! Jalur CNI (being written).
