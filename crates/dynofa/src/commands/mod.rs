//! One module per subcommand.

pub mod bench;
pub mod calibrate;
pub mod convert;
pub mod describe;
pub mod devices;
pub mod experiment;
pub mod extract;
pub mod infer;
pub mod profile;
pub mod run;
pub mod search;
pub mod train_predictor;
pub mod tune;
