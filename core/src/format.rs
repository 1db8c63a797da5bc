//! The `.crew` model file. (Being implemented; see docs/format.md once written.)

use crate::encode::EncodedLayer;
use std::path::Path;

/// A CREW model: its encoded FC layers, in file order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Model {
    pub layers: Vec<EncodedLayer>,
}

/// Why a `.crew` file was rejected.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("cannot read or write {path}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl Model {
    /// Serialize to the `.crew` byte format.
    pub fn to_bytes(&self) -> Vec<u8> {
        todo!("helper A")
    }
    /// Parse and fully validate a `.crew` file's bytes.
    pub fn from_bytes(_bytes: &[u8]) -> Result<Model, FormatError> {
        todo!("helper A")
    }
    /// Read and validate a `.crew` file.
    pub fn read_file(_path: &Path) -> Result<Model, FormatError> {
        todo!("helper A")
    }
    /// Write atomically: a temporary file in the same directory, then rename.
    pub fn write_file(&self, _path: &Path) -> Result<(), FormatError> {
        todo!("helper A")
    }
}
