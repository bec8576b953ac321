//! The Tokio runtime every Sentio process (`sentio`, `sentio-scheduler`,
//! `sentio-executor`) runs on.

/// Stack of each runtime thread. Turning a plan into protobuf and back
/// recurses once per plan node, and a debug build's frames are large: a
/// query of a few joins and subqueries (an ML function over a join of the
/// lake and the operational DB) overflows Tokio's default 2 MiB. The memory
/// is reserved, not used, until a deep plan needs it.
pub const THREAD_STACK: usize = 32 * 1024 * 1024;

/// A multi-threaded runtime with [`THREAD_STACK`]-sized thread stacks.
///
/// ```
/// let rt = sentio_sql::runtime::build().unwrap();
/// assert_eq!(rt.block_on(async { 1 + 1 }), 2);
/// ```
pub fn build() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().thread_stack_size(THREAD_STACK).build()
}
