//! The driver's error types.

use crew_core::encode::EncodeError;
use crew_core::regs::ErrorCode;
use std::time::Duration;

/// A transport error with its type erased, so that [`DriverError`] does not depend on the backend.
/// Display and source are those of the wrapped error.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct BoxedError(Box<dyn std::error::Error + Send + Sync + 'static>);

impl BoxedError {
    /// Box any error.
    pub fn new<E: std::error::Error + Send + Sync + 'static>(e: E) -> BoxedError {
        BoxedError(Box::new(e))
    }

    /// The wrapped error.
    pub fn inner(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.0
    }

    /// Unwrap into the boxed error (for downcasting).
    pub fn into_inner(self) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self.0
    }
}

/// Everything that can go wrong between the driver and a CREW device.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The backend failed to move a word (or a burst starting at `addr`).
    #[error("transport error at address {addr:#010x}")]
    Transport {
        addr: u32,
        #[source]
        source: BoxedError,
    },

    /// The ID register does not hold the CREW magic.
    #[error("not a CREW device: ID register reads {found:#010x}, expected {expected:#010x} (\"CREW\")")]
    BadMagic { found: u32, expected: u32 },

    /// The register map's major version is not the one this driver speaks.
    #[error(
        "unsupported register-map version {found_major}.{found_minor}: this driver speaks major version {expected_major}"
    )]
    VersionMismatch { found_major: u16, found_minor: u16, expected_major: u16 },

    /// CAPS.KIND is not a core kind this driver knows.
    #[error("unknown core kind {found} in CAPS.KIND (known: 0 = crew, 1 = dense)")]
    UnknownKind { found: u32 },

    /// CAPS or a size register holds a value no usable device has.
    #[error("device reports an unusable configuration: {field} = {found} ({reason})")]
    BadConfig { field: &'static str, found: u64, reason: &'static str },

    /// The backend could not open the device (missing node, permission, BAR too small, ...).
    #[error("cannot open device `{device}`")]
    Open {
        device: String,
        #[source]
        source: BoxedError,
    },

    /// The device string names a backend this build does not have.
    #[error("unknown device scheme `{scheme}` in `{device}`; known schemes: {known}")]
    UnknownScheme { device: String, scheme: String, known: String },

    /// The device string has an option the backend does not take, or a bad value for one.
    #[error("bad option `{option}` in device `{device}`: {reason}")]
    BadOption { device: String, option: String, reason: String },

    /// STATUS did not show DONE (or ERROR) within [`OpenOptions::timeout`](crate::accel::OpenOptions::timeout).
    #[error("{op} did not finish within {waited:?} (STATUS stayed busy or idle)")]
    Timeout { op: String, waited: Duration },

    /// The device stopped a run or CRC of `layer`, `tile` with STATUS.ERROR and this code.
    #[error("device error on layer {layer}, tile {tile}: {code:?} ({})", code.describe())]
    Device { code: ErrorCode, layer: usize, tile: usize },

    /// The device set STATUS.ERROR with a code this driver does not know.
    #[error("device error on layer {layer}, tile {tile}: unknown error code {code}")]
    UnknownErrorCode { code: u8, layer: usize, tile: usize },

    /// The device's CRC of a freshly written tile image differs from the image's CRC.
    #[error(
        "weight memory check failed for layer {layer}, tile {tile}: image CRC {expected:#010x}, device computed {found:#010x}"
    )]
    CrcMismatch { layer: usize, tile: usize, expected: u32, found: u32 },

    /// A layer of the model is not a valid CREW encoding.
    #[error("layer {layer} (`{name}`) is not a valid CREW encoding")]
    InvalidLayer {
        layer: usize,
        name: String,
        #[source]
        source: EncodeError,
    },

    /// A layer cannot be tiled onto this device at all (the weight memory is too small for even
    /// one column of one output).
    #[error("layer {layer} cannot be tiled onto this device: {reason}")]
    DoesNotFit { layer: usize, reason: String },

    /// A run was requested before any model was loaded.
    #[error("no model is loaded")]
    NoModel,

    /// The layer index is past the loaded model's layers.
    #[error("layer {layer} does not exist: the loaded model has {layers} layers")]
    NoSuchLayer { layer: usize, layers: usize },

    /// An input vector has the wrong length.
    #[error("layer {layer} takes {expected} inputs, input vector {vector} has {found}")]
    InputLength { layer: usize, vector: usize, expected: usize, found: usize },
}
