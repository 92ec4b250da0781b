//! Problems found in a definition, reported the way a compiler reports them:
//! the file, the line and column, the offending text underlined, and a hint.
//!
//! Every pass collects [`Problem`]s instead of stopping at the first one; the
//! public entry points hand them back together as [`Diagnostics`], which miette
//! prints one after the other.

use std::fmt;
use std::sync::Arc;

use miette::{Diagnostic, LabeledSpan, NamedSource, Severity, SourceCode};

/// A definition file as read from disk, kept for error reports.
#[derive(Debug)]
pub struct SourceFile {
    pub name: String,
    pub text: String,
    named: NamedSource<String>,
    line_starts: Vec<usize>,
}

impl SourceFile {
    pub fn new(name: &str, text: &str) -> Arc<Self> {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Arc::new(SourceFile {
            name: name.to_owned(),
            text: text.to_owned(),
            named: NamedSource::new(name, text.to_owned()).with_language("yaml"),
            line_starts,
        })
    }

    /// The 1-based line and column of a byte offset (columns count characters).
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&start| start <= offset) - 1;
        let start = self.line_starts[line];
        let column = self
            .text
            .get(start..offset)
            .map_or(offset - start, |s| s.chars().count());
        (line + 1, column + 1)
    }
}

/// A byte range in a source file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Self {
        Span {
            start,
            end: end.max(start),
        }
    }

    pub fn len(&self) -> usize {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// A part of this span, `offset` bytes in and `len` long, kept inside it.
    pub fn sub(&self, offset: usize, len: usize) -> Span {
        let start = (self.start + offset).min(self.end);
        Span::new(start, (start + len).min(self.end))
    }
}

/// One problem in a definition.
#[derive(Debug, Clone)]
pub struct Problem {
    /// A stable name such as `garden::cycle`, for tests and documentation.
    pub code: &'static str,
    pub message: String,
    pub severity: Severity,
    pub file: Option<Arc<SourceFile>>,
    pub span: Option<Span>,
    pub label: String,
    pub help: Option<String>,
    /// More places worth underlining, such as the other steps of a cycle.
    pub notes: Vec<(Span, String)>,
}

impl Problem {
    pub fn error(code: &'static str, message: impl Into<String>) -> Self {
        Problem {
            code,
            message: message.into(),
            severity: Severity::Error,
            file: None,
            span: None,
            label: String::new(),
            help: None,
            notes: Vec::new(),
        }
    }

    pub fn warning(code: &'static str, message: impl Into<String>) -> Self {
        Problem {
            severity: Severity::Warning,
            ..Problem::error(code, message)
        }
    }

    pub fn at(mut self, file: &Arc<SourceFile>, span: Span, label: impl Into<String>) -> Self {
        self.file = Some(file.clone());
        self.span = Some(span);
        self.label = label.into();
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn note(mut self, span: Span, label: impl Into<String>) -> Self {
        self.notes.push((span, label.into()));
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// The 1-based line and column where the problem starts, when known.
    pub fn line_col(&self) -> Option<(usize, usize)> {
        Some(self.file.as_ref()?.line_col(self.span?.start))
    }

    /// The text the problem underlines.
    pub fn underlined(&self) -> Option<&str> {
        let span = self.span?;
        self.file.as_ref()?.text.get(span.start..span.end)
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Problem {}

impl Diagnostic for Problem {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(self.code))
    }

    fn severity(&self) -> Option<Severity> {
        Some(self.severity)
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help.as_ref().map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        self.file.as_ref().map(|f| &f.named as &dyn SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let span = self.span?;
        let main = LabeledSpan::new_primary_with_span(non_empty(&self.label), (span.start, span.len()));
        let notes = self
            .notes
            .iter()
            .map(|(span, label)| LabeledSpan::new_with_span(non_empty(label), (span.start, span.len())));
        Some(Box::new(std::iter::once(main).chain(notes)))
    }
}

fn non_empty(label: &str) -> Option<String> {
    (!label.is_empty()).then(|| label.to_owned())
}

/// Every problem found in one or more definitions.
#[derive(Debug, Clone, Default)]
pub struct Diagnostics {
    pub problems: Vec<Problem>,
}

impl Diagnostics {
    pub fn push(&mut self, problem: Problem) {
        self.problems.push(problem);
    }

    pub fn extend(&mut self, other: Diagnostics) {
        self.problems.extend(other.problems);
    }

    pub fn has_errors(&self) -> bool {
        self.problems.iter().any(Problem::is_error)
    }

    pub fn errors(&self) -> impl Iterator<Item = &Problem> {
        self.problems.iter().filter(|p| p.is_error())
    }

    pub fn warnings(&self) -> impl Iterator<Item = &Problem> {
        self.problems.iter().filter(|p| !p.is_error())
    }

    /// The first problem with this code, for tests.
    pub fn find(&self, code: &str) -> Option<&Problem> {
        self.problems.iter().find(|p| p.code == code)
    }

    /// Keeps warnings and returns `Err(self)` when there is any error.
    pub fn into_result<T>(self, value: T) -> Result<(T, Vec<Problem>), Diagnostics> {
        if self.has_errors() {
            Err(self)
        } else {
            Ok((value, self.problems))
        }
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let errors = self.errors().count();
        let warnings = self.problems.len() - errors;
        let file = self
            .problems
            .iter()
            .find_map(|p| p.file.as_ref())
            .map(|f| format!(" in {}", f.name))
            .unwrap_or_default();
        match (errors, warnings) {
            (1, 0) => write!(f, "1 problem{file}"),
            (e, 0) => write!(f, "{e} problems{file}"),
            (e, w) => {
                let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
                write!(f, "{} and {}{file}", plural(e, "error"), plural(w, "warning"))
            }
        }
    }
}

impl std::error::Error for Diagnostics {}

impl Diagnostic for Diagnostics {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new("garden::definition"))
    }

    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn Diagnostic> + 'a>> {
        Some(Box::new(self.problems.iter().map(|p| p as &dyn Diagnostic)))
    }
}

impl From<Problem> for Diagnostics {
    fn from(problem: Problem) -> Self {
        Diagnostics {
            problems: vec![problem],
        }
    }
}

/// The closest of `candidates` to `word`, when close enough to be a likely typo.
pub fn did_you_mean<'c>(word: &str, candidates: impl IntoIterator<Item = &'c str>) -> Option<&'c str> {
    // A typo seldom changes a name's length by much; skipping the rest keeps
    // thousands of bad references against thousands of steps cheap.
    let slack = 2 + word.len() / 4;
    candidates
        .into_iter()
        .filter(|c| c.len().abs_diff(word.len()) <= slack)
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// `did you mean `x`?` or a list of what is allowed.
pub fn suggestion<'c>(word: &str, candidates: impl IntoIterator<Item = &'c str> + Clone) -> String {
    match did_you_mean(word, candidates.clone()) {
        Some(best) => format!("did you mean `{best}`?"),
        None => {
            // A long list helps nobody: name a few and count the rest.
            const LISTED: usize = 12;
            let mut names = candidates.into_iter();
            let listed: Vec<_> = names.by_ref().take(LISTED).map(|c| format!("`{c}`")).collect();
            let more = names.count();
            match (listed.is_empty(), more) {
                (true, _) => "there is nothing of that name here".into(),
                (false, 0) => format!("expected one of {}", listed.join(", ")),
                (false, more) => format!("expected one of {}, or {more} more", listed.join(", ")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_typo_finds_its_name_and_a_long_list_is_cut() {
        let names = ["outline", "gather", "draft", "review"];
        assert_eq!(did_you_mean("outlnie", names), Some("outline"));
        assert_eq!(suggestion("drfat", names), "did you mean `draft`?");
        let many: Vec<String> = (0..40).map(|i| format!("step{i}")).collect();
        let hint = suggestion("zzzzzzzzzzzzzzzz", many.iter().map(String::as_str));
        assert!(hint.starts_with("expected one of `step0`"), "{hint}");
        assert!(hint.ends_with(", or 28 more"), "{hint}");
    }
}
