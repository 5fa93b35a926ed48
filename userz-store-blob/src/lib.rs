//! # userz-store-blob
//!
//! Blob storage on the `object_store` crate (work in progress).
