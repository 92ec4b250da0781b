//! The Execution Garden compiler: workflow definitions in, Step Functions
//! artifacts out. No AWS SDK lives here.
//!
//! The passes, each in its own module:
//!
//! 1. [`parse`]: YAML text to a [`definition::Definition`], every node with its
//!    position ([`yaml`]); shape errors (types, unknown keys) are found here.
//! 2. [`resolve`]: defaults, resources and templates; references to other
//!    steps become dependencies; `when` becomes a Choice test.
//! 3. [`graph`]: the dependency graph (`petgraph`) and the checks that need it.
//! 4. [`plan`]: the DAG as sequences and parallel groups.
//! 5. [`asl`] and [`policy`]: the state machine, its IAM policy and the
//!    resources it needs; [`explain`] counts transitions and costs.
//!
//! Beside them: [`diagram`] draws the dependency graph (Mermaid, DOT) and
//! [`schema`] generates the JSON Schema of definitions.
//!
//! [`load_file`]/[`load_str`] run passes 1 to 3, [`compile()`] runs 4 and 5
//! and checks the AWS limits on the result. Every problem is reported at once,
//! as [`Diagnostics`], with file, line and column.
//!
//! It also holds what the compiler shares with the run time: the shapes that
//! travel on the queues ([`wire`]), the template language ([`template`]) and the
//! names of deployed resources ([`target`]).

pub mod asl;
pub mod compile;
pub mod definition;
pub mod diagram;
pub mod error;
pub mod explain;
pub mod graph;
pub mod parse;
pub mod plan;
pub mod policy;
pub mod resolve;
pub mod schedule;
pub mod schema;
pub mod target;
pub mod template;
pub mod wire;
pub mod workflow;
pub mod yaml;

pub use compile::{Compiled, SharedResources, compile, load_file, load_str};
pub use error::{Diagnostics, Problem};
pub use explain::Explain;
pub use schedule::Schedule;
pub use target::Target;
pub use workflow::Workflow;
