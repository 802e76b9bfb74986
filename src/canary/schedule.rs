//! Scheduling (filled in below).
