//! One module per subcommand.

pub mod convert;
pub mod describe;
pub mod infer;
