//! AWS failures in words a person can act on. The two common causes get their
//! fix: the endpoint cannot be reached (the local stack is down, or the AWS
//! configuration points elsewhere), and nothing is deployed under this prefix.
//! Anything else keeps the provider's own message.

use miette::miette;

const UNREACHABLE: &[&str] = &[
    "Connection refused",
    "dispatch failure",
    "error trying to connect",
    "io error",
];
const MISSING: &[&str] = &["ResourceNotFoundException", "NonExistentQueue", "QueueDoesNotExist"];
const START_HELP: &str =
    "start the local stack with `bash localstack/up.sh`, or check AWS_ENDPOINT_URL and your AWS profile";

/// `what` failed because of `cause` (an SDK error's text); `table` names the
/// deployment in the message.
pub fn failed(what: &str, table: &str, cause: &str) -> miette::Report {
    let endpoint = endpoint();
    if mentions(cause, UNREACHABLE) {
        miette!(help = START_HELP, "{what}: cannot reach {endpoint}")
    } else if mentions(cause, MISSING) {
        miette!(
            help = "deploy first with `garden deploy` (and the same --prefix / GARDEN_PREFIX)",
            "{what}: the table `{table}` or its queues do not exist at {endpoint}"
        )
    } else {
        miette!("{what}: {}", cause.lines().next().unwrap_or_default())
    }
}

/// A deployment step that failed; its message already names the resource.
pub fn deploy_failed(err: garden_infra::InfraError) -> miette::Report {
    let text = err.to_string();
    if mentions(&text, UNREACHABLE) {
        return miette!(help = START_HELP, "{text} (endpoint: {})", endpoint());
    }
    miette!("{text}")
}

fn endpoint() -> String {
    std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| "AWS".to_owned())
}

fn mentions(text: &str, signs: &[&str]) -> bool {
    signs.iter().any(|sign| text.contains(sign))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_common_causes_get_their_fix() {
        let down = failed(
            "cannot read job `j`",
            "garden",
            "dispatch failure: Connection refused (os error 111)",
        );
        assert!(format!("{down:?}").contains("localstack/up.sh"), "{down:?}");
        let missing = failed("cannot list jobs", "garden", "ResourceNotFoundException: no table");
        assert!(format!("{missing:?}").contains("garden deploy"), "{missing:?}");
        let other = failed("cannot list jobs", "garden", "AccessDenied: no\nmore detail");
        assert_eq!(other.to_string(), "cannot list jobs: AccessDenied: no");
    }
}
