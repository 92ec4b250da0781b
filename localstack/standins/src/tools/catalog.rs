//! Deterministic answers of the research and support tools, derived from their inputs so that the
//! same call always gives the same answer and different calls give different ones.

use serde::Serialize;

use crate::converse::words::{capitalize, hash_hex, key_words, rng_from_hash};

/// One web search hit.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct SearchResult {
    pub title: String,
    pub url: String,
    pub snippet: String,
}

/// `max_results` hits (1 to 10) for `query`, built from its words, under `https://example.org/`.
pub fn search(query: &str, max_results: usize) -> Vec<SearchResult> {
    let mut words = key_words(query);
    if words.is_empty() {
        words = query.split_whitespace().map(str::to_lowercase).collect();
    }
    let hash = hash_hex(&[query.as_bytes()]);
    let mut rng = rng_from_hash(&hash);
    let kinds = [
        "overview",
        "analysis",
        "data",
        "guide",
        "outlook",
        "case-study",
        "faq",
        "report",
    ];
    let sites = ["journal", "institute", "observatory", "review", "library"];

    (0..max_results.clamp(1, 10))
        .map(|index| {
            let kind = kinds[(rng.usize(..kinds.len()) + index) % kinds.len()];
            let site = sites[rng.usize(..sites.len())];
            let lead = &words[index % words.len()];
            let topic: Vec<String> = words.iter().take(3).map(|w| capitalize(w)).collect();
            let slug = words.iter().take(4).map(String::as_str).collect::<Vec<_>>().join("-");
            SearchResult {
                title: format!("{}: {}", topic.join(" "), capitalize(&kind.replace('-', " "))),
                url: format!(
                    "https://example.org/{site}/{slug}/{kind}-{}",
                    &hash[index * 4..index * 4 + 8]
                ),
                snippet: format!(
                    "A {} on {} from the {site}, with notes on {} and {} sources.",
                    kind.replace('-', " "),
                    words.join(" "),
                    lead,
                    3 + rng.u8(..20)
                ),
            }
        })
        .collect()
}

/// A customer record looked up by email.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Customer {
    pub customer_id: String,
    /// `free`, `pro` or `enterprise`.
    pub tier: String,
    pub open_tickets: u32,
}

/// The customer behind `email` (case-insensitive), derived from it.
pub fn customer(email: &str) -> Customer {
    let email = email.trim().to_lowercase();
    let hash = hash_hex(&[b"customer", email.as_bytes()]);
    let mut rng = rng_from_hash(&hash);
    let tiers = ["free", "pro", "enterprise"];
    Customer {
        customer_id: format!("CUST-{}", hash[..8].to_uppercase()),
        tier: tiers[rng.usize(..tiers.len())].to_owned(),
        open_tickets: rng.u32(0..=4),
    }
}

/// The id of a ticket with these fields: the same fields give the same ticket, as an idempotent API
/// would.
pub fn ticket_id(customer_id: &str, category: &str, priority: &str, summary: &str) -> String {
    let hash = hash_hex(&[
        customer_id.as_bytes(),
        category.as_bytes(),
        priority.as_bytes(),
        summary.as_bytes(),
    ]);
    format!("TCK-{}", hash[..10].to_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_is_deterministic_and_uses_the_query() {
        let first = search("solar storage tariffs", 3);
        assert_eq!(first, search("solar storage tariffs", 3));
        assert_eq!(first.len(), 3);
        assert_ne!(first, search("wind power", 3));
        for hit in &first {
            assert!(hit.url.starts_with("https://example.org/"), "{}", hit.url);
            assert!(hit.title.contains("Solar"), "{}", hit.title);
            assert!(hit.snippet.contains("storage"), "{}", hit.snippet);
        }
        assert_eq!(search("x", 50).len(), 10);
    }

    #[test]
    fn customers_and_tickets_are_stable() {
        let alice = customer("Alice@Example.com");
        assert_eq!(alice, customer("alice@example.com "));
        assert!(alice.customer_id.starts_with("CUST-") && alice.customer_id.len() == 13);
        assert!(["free", "pro", "enterprise"].contains(&alice.tier.as_str()));
        assert_ne!(alice.customer_id, customer("bob@example.com").customer_id);

        let ticket = ticket_id(&alice.customer_id, "billing", "high", "double charge");
        assert_eq!(
            ticket,
            ticket_id(&alice.customer_id, "billing", "high", "double charge")
        );
        assert_ne!(ticket, ticket_id(&alice.customer_id, "billing", "low", "double charge"));
    }
}
