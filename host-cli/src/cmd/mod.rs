pub mod encode;
pub mod info;
pub mod run;
pub mod stats;
