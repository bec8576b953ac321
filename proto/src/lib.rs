//! Protobuf messages for everything Sentio sends across the cluster.
//!
//! The schema lives in `proto/sentio.proto` and is compiled at build time by
//! [`protox`](https://docs.rs/protox) (pure Rust), so building Sentio needs
//! no system `protoc`. The codecs in `sentio-sql` wrap every Sentio node in an
//! [`ExtensionEnvelope`]; nodes never carry credentials, only names that each
//! process resolves from its own configuration.
//!
//! ```
//! use prost::Message;
//! use sentio_proto::{ExtensionEnvelope, ENVELOPE_MAGIC};
//!
//! let env = ExtensionEnvelope {
//!     magic: ENVELOPE_MAGIC,
//!     format_version: 1,
//!     kind: "udf:example".into(),
//!     payload: vec![],
//! };
//! let bytes = env.encode_to_vec();
//! assert_eq!(ExtensionEnvelope::decode(bytes.as_slice()).unwrap(), env);
//! ```

#![allow(clippy::doc_markdown)]

include!(concat!(env!("OUT_DIR"), "/sentio.rs"));

pub use prost;

/// Value of [`ExtensionEnvelope::magic`]: the bytes `"SNTO"` read as a
/// little-endian `u32`.
pub const ENVELOPE_MAGIC: u32 = u32::from_le_bytes(*b"SNTO");

/// The envelope format this build writes and the newest it can read.
pub const FORMAT_VERSION: u32 = 1;
