pub mod bench;
pub mod encode;
pub mod info;
pub mod program;
pub mod run;
pub mod stats;
