pub mod encode;
pub mod run;
pub mod stats;
