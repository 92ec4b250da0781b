//! What `garden compile --explain` prints: which steps run side by side, where
//! the plan added waiting, how many state transitions and history events one
//! job makes, and what 1,000 jobs cost at published prices.
//!
//! Counts come from the plan, for the happy path (every `when` true, no
//! failure), with each `for_each` assumed to run [`ASSUMED_ITEMS`] items.
//! Cost: three walks of the plan, linear in the number of steps.

use std::fmt;

use crate::asl::{Tree, number};
use crate::plan::Plan;
use crate::wire::TaskKind;
use crate::workflow::{StepBody, Workflow};

/// Items a `for_each` is assumed to run, for counts and costs.
pub const ASSUMED_ITEMS: u64 = 10;
/// The Step Functions limit on events in one execution's history.
pub const MAX_HISTORY_EVENTS: u64 = 25_000;

/// Prices in US dollars (us-east-1, published list prices).
const PER_TRANSITION: f64 = 0.025 / 1_000.0;
const PER_SQS_REQUEST: f64 = 0.40 / 1_000_000.0;
const PER_WRITE_UNIT: f64 = 0.625 / 1_000_000.0;
const PER_READ_UNIT: f64 = 0.125 / 1_000_000.0;

#[derive(Debug, Clone, PartialEq)]
pub struct Explain {
    pub workflow: String,
    /// Each Parallel state: its branches, each a list of step names.
    pub parallel: Vec<(String, Vec<Vec<String>>)>,
    /// Waiting added beyond the dependencies: (waited for, waiting).
    pub added_waits: Vec<(String, String)>,
    /// Join gates: the waiting step and the steps of other branches it waits for.
    pub gates: Vec<(String, Vec<String>)>,
    pub critical_path: usize,
    pub planned_critical_path: usize,
    pub counts: Counts,
    /// History events that do not depend on item counts, and per `for_each` item.
    pub fixed_events: u64,
    pub events_per_item: u64,
    /// States in the emitted definition, nested ones included, and its size in bytes.
    pub states: usize,
    pub definition_bytes: usize,
}

impl Explain {
    /// How many `for_each` items (of Map states, all together) one execution's
    /// history has room for; `None` when no Map state iterates.
    pub fn items_room(&self) -> Option<u64> {
        MAX_HISTORY_EVENTS
            .saturating_sub(self.fixed_events)
            .checked_div(self.events_per_item)
    }
}

/// Per job, on the happy path.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Counts {
    pub transitions: u64,
    pub history_events: u64,
    pub sqs_requests: u64,
    pub write_units: u64,
    pub read_units: u64,
}

impl Counts {
    /// Dollars per 1,000 jobs: (transitions, SQS, DynamoDB writes, DynamoDB reads).
    pub fn cost_per_thousand(&self) -> (f64, f64, f64, f64) {
        let k = 1_000.0;
        (
            self.transitions as f64 * PER_TRANSITION * k,
            self.sqs_requests as f64 * PER_SQS_REQUEST * k,
            self.write_units as f64 * PER_WRITE_UNIT * k,
            self.read_units as f64 * PER_READ_UNIT * k,
        )
    }
}

pub fn explain(wf: &Workflow, plan: &Plan) -> Explain {
    let tree = number(&plan.root, &mut 0);
    let mut parallel = Vec::new();
    collect_parallel(wf, &tree, &mut parallel);
    let name = |i: usize| wf.steps[i].name.clone();
    let with_items = count(wf, plan, &tree, ASSUMED_ITEMS);
    let no_items = count(wf, plan, &tree, 0);
    let one_item = count(wf, plan, &tree, 1);
    Explain {
        workflow: wf.name.clone(),
        parallel,
        added_waits: plan.added.iter().map(|&(a, b)| (name(a), name(b))).collect(),
        gates: plan
            .gates
            .iter()
            .map(|(&s, g)| (name(s), g.deps.iter().map(|&d| name(d)).collect()))
            .collect(),
        critical_path: plan.critical_path,
        planned_critical_path: plan.planned_critical_path,
        counts: with_items,
        fixed_events: no_items.history_events,
        events_per_item: one_item.history_events - no_items.history_events,
        states: 0,
        definition_bytes: 0,
    }
}

/// Counts the states of a definition, those inside Parallel and Map states included.
pub fn count_states(states: &serde_json::Value) -> usize {
    states.as_object().map_or(0, |map| {
        map.values()
            .map(|state| {
                let branches: usize = state["Branches"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|b| count_states(&b["States"]))
                    .sum();
                1 + branches + count_states(&state["ItemProcessor"]["States"])
            })
            .sum()
    })
}

fn collect_parallel(wf: &Workflow, tree: &Tree, out: &mut Vec<(String, Vec<Vec<String>>)>) {
    match tree {
        Tree::Step(_) => {}
        Tree::Seq(items) => items.iter().for_each(|t| collect_parallel(wf, t, out)),
        Tree::Par(id, branches) => {
            let lists = branches
                .iter()
                .map(|b| steps_of(b).into_iter().map(|s| wf.steps[s].name.clone()).collect())
                .collect();
            out.push((format!("Parallel {id}"), lists));
            branches.iter().for_each(|t| collect_parallel(wf, t, out));
        }
    }
}

fn steps_of(tree: &Tree) -> Vec<usize> {
    match tree {
        Tree::Step(s) => vec![*s],
        Tree::Seq(items) | Tree::Par(_, items) => items.iter().flat_map(steps_of).collect(),
    }
}

/// Seconds a task of each kind is assumed to take, for heartbeat counts.
fn assumed_secs(kind: TaskKind) -> u64 {
    match kind {
        TaskKind::Model => 20,
        TaskKind::Tool => 2,
        TaskKind::Agent => 60,
        TaskKind::Approval | TaskKind::Control => 0,
    }
}

fn count(wf: &Workflow, plan: &Plan, tree: &Tree, items: u64) -> Counts {
    // Execution started and succeeded; the job queue's send, receive and delete;
    // the dispatcher's job item; the output task, success update and Succeed state.
    let mut c = Counts {
        transitions: 3,
        history_events: 2 + 6 + 5 + 2,
        sqs_requests: 3 + 3,
        write_units: 1 + 1 + 1,
        read_units: 1 + wf.steps.len() as u64,
    };
    walk(wf, tree, items, &mut c);
    for (g, gate) in &plan.gates {
        // The gate task (and the merge of returned values); the gate item is
        // written on register, once per finished dependency, and on opening.
        let merge = u64::from(!gate.values.is_empty());
        c.transitions += 1 + merge;
        c.history_events += 6 + 2 * merge;
        c.sqs_requests += 3;
        c.write_units += 2 + gate.deps.len() as u64;
        c.read_units += u64::from(wf.steps[*g].exports.is_empty());
    }
    let notified = plan
        .gates
        .values()
        .flat_map(|g| g.deps.iter())
        .collect::<std::collections::BTreeSet<_>>();
    // Each `Finished` notice: one transition, sent, received and deleted.
    c.transitions += notified.len() as u64;
    c.history_events += 5 * notified.len() as u64;
    c.sqs_requests += 3 * notified.len() as u64;
    c
}

fn walk(wf: &Workflow, tree: &Tree, items: u64, c: &mut Counts) {
    match tree {
        Tree::Seq(list) => list.iter().for_each(|t| walk(wf, t, items, c)),
        Tree::Par(_, branches) => {
            c.transitions += 1;
            c.history_events += 4;
            branches.iter().for_each(|t| walk(wf, t, items, c));
        }
        Tree::Step(s) => {
            let step = &wf.steps[*s];
            if step.for_each.as_ref().is_some_and(|fe| fe.wide) {
                // One Control task; the items are SQS messages, not states:
                // per item a send, receive and delete, two step writes, a
                // counted completion (a transaction: two items, twice the
                // units) and the claim to send the item's successor.
                c.transitions += 1;
                c.history_events += 6;
                c.sqs_requests += 3 + 3 * items;
                c.write_units += 2 + 7 * items;
                c.read_units += 1 + (2 + step.deps.len() as u64) * items;
                return;
            }
            if step.when.is_some() {
                c.transitions += 1;
                c.history_events += 2;
            }
            let runs = if step.for_each.is_some() {
                c.transitions += 1;
                c.history_events += 4 + 2 * items;
                items
            } else {
                1
            };
            c.transitions += runs;
            match &step.body {
                StepBody::Task(action) => {
                    let kind = action.kind();
                    let beats = step
                        .heartbeat_secs
                        .map_or(0, |hb| assumed_secs(kind).div_ceil(hb.max(1)));
                    c.history_events += 6 * runs;
                    c.sqs_requests += (3 + beats) * runs;
                    c.write_units += 2 * runs;
                    c.read_units += (1 + step.deps.len() as u64) * runs;
                }
                StepBody::Wait(_) => c.history_events += 2 * runs,
                StepBody::Workflow { .. } => {
                    // The child's job item is written first (a putItem task).
                    c.transitions += runs;
                    c.history_events += 11 * runs;
                    c.write_units += runs;
                }
            }
        }
    }
}

impl fmt::Display for Explain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "workflow {}", self.workflow)?;
        writeln!(f)?;
        writeln!(f, "parallel groups:")?;
        if self.parallel.is_empty() {
            writeln!(f, "  none: every step runs after the one before it")?;
        }
        for (name, branches) in &self.parallel {
            let list: Vec<String> = branches.iter().map(|b| format!("[{}]", b.join(" → "))).collect();
            writeln!(f, "  {name}: {}", list.join(" ‖ "))?;
        }
        if !self.gates.is_empty() {
            writeln!(f)?;
            writeln!(
                f,
                "join gates (dependencies in other branches, released by a DynamoDB counter):"
            )?;
            for (step, deps) in &self.gates {
                writeln!(f, "  {step} waits for {}", deps.join(", "))?;
            }
        }
        writeln!(f)?;
        if self.added_waits.is_empty() {
            writeln!(f, "added waiting: none; every step waits only for what it depends on")?;
        } else {
            writeln!(f, "added waiting (the dependencies are not series-parallel):")?;
            for (a, b) in &self.added_waits {
                writeln!(f, "  {b} also waits for {a}")?;
            }
        }
        writeln!(
            f,
            "critical path: {} steps by dependency, {} as planned (+{}), with unit step durations",
            self.critical_path,
            self.planned_critical_path,
            self.planned_critical_path.saturating_sub(self.critical_path)
        )?;
        if self.definition_bytes > 0 {
            writeln!(
                f,
                "state machine: {} states, {} bytes of {} allowed",
                self.states,
                self.definition_bytes,
                crate::compile::MAX_DEFINITION_BYTES
            )?;
        }
        writeln!(f)?;
        let c = &self.counts;
        writeln!(
            f,
            "per job (happy path, every `when` true, each for_each {ASSUMED_ITEMS} items):"
        )?;
        writeln!(f, "  state transitions     {}", c.transitions)?;
        writeln!(
            f,
            "  history events        {} of {MAX_HISTORY_EVENTS}",
            c.history_events
        )?;
        if let Some(room) = self.items_room() {
            writeln!(f, "  for_each items that fit the history: about {room} in all")?;
        }
        writeln!(f, "  SQS requests          {}", c.sqs_requests)?;
        writeln!(f, "  DynamoDB writes       {} WRU", c.write_units)?;
        writeln!(f, "  DynamoDB reads        {} RRU", c.read_units)?;
        let (t, q, w, r) = c.cost_per_thousand();
        writeln!(f)?;
        writeln!(f, "cost per 1,000 jobs (US dollars, list prices, us-east-1):")?;
        writeln!(f, "  Step Functions Standard  ${t:.4}  ($0.025 per 1,000 transitions)")?;
        writeln!(f, "  SQS                      ${q:.4}  ($0.40 per million requests)")?;
        writeln!(f, "  DynamoDB writes          ${w:.4}  ($0.625 per million WRU)")?;
        writeln!(f, "  DynamoDB reads           ${r:.4}  ($0.125 per million RRU)")?;
        writeln!(f, "  total                    ${:.4}", t + q + w + r)?;
        writeln!(f)?;
        writeln!(
            f,
            "assumptions: free tiers ignored; items and messages under 1 KB (1 WRU) and 4 KB (1 RRU);"
        )?;
        writeln!(
            f,
            "  SQS counts send, receive and delete per message, plus one visibility extension per"
        )?;
        writeln!(
            f,
            "  heartbeat over an assumed duration (model 20 s, tool 2 s, agent 60 s);"
        )?;
        writeln!(
            f,
            "  a worker writes its step item twice (start, finish) and reads the job and each dependency once;"
        )?;
        writeln!(
            f,
            "  model tokens, Lambda time, AgentCore and data transfer are not included"
        )?;
        Ok(())
    }
}
