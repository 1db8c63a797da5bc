pub mod bench;
pub mod encode;
pub mod info;
pub mod program;
pub mod replay;
pub mod run;
pub mod stats;
