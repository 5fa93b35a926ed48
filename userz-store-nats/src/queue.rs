use crate::subject::Names;
use async_nats::jetstream::{self, stream::StorageType};
use userz_core::Result;
#[derive(Debug)]
pub(crate) struct QueueState {}
pub(crate) async fn open(_js: &jetstream::Context, _names: &Names, _s: StorageType, _r: usize) -> Result<QueueState> {
    Ok(QueueState {})
}
