//! The Execution Garden compiler: workflow definitions in, Step Functions
//! artifacts out. No AWS SDK lives here.
//!
//! It also holds what the compiler shares with the run time: the shapes that
//! travel on the queues ([`wire`]), the template language ([`template`]) and the
//! names of deployed resources ([`target`]).

pub mod target;
pub mod template;
pub mod wire;
