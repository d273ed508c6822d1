//! Host-side integration and model tests.
