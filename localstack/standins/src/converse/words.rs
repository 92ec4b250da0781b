//! Text helpers for deterministic answers: the key words of a prompt, the family of a model id, and a
//! seed drawn from a request hash.

use sha2::{Digest, Sha256};

const STOPWORDS: &[&str] = &[
    "the", "and", "for", "are", "but", "not", "you", "your", "all", "any", "can", "had", "her", "was", "one", "our",
    "out", "has", "have", "him", "his", "how", "its", "may", "new", "now", "see", "two", "way", "who", "did", "get",
    "let", "say", "she", "too", "use", "with", "this", "that", "from", "they", "will", "would", "there", "their",
    "what", "about", "which", "when", "make", "like", "into", "than", "then", "them", "these", "some", "could", "each",
    "other", "only", "over", "such", "also", "should", "please", "json", "return", "give", "list", "answer", "using",
    "based", "within", "where", "while", "must",
];

/// The distinct key words of `text` in order of appearance: lowercase, three letters or more, no
/// common English words.
pub fn key_words(text: &str) -> Vec<String> {
    let mut words: Vec<String> = Vec::new();
    for raw in text.split(|c: char| !c.is_alphanumeric()) {
        let word = raw.to_lowercase();
        if word.chars().count() < 3 || word.chars().all(|c| c.is_ascii_digit()) || STOPWORDS.contains(&word.as_str()) {
            continue;
        }
        if !words.contains(&word) {
            words.push(word);
        }
    }
    words
}

/// The model family of a Bedrock model id, inference profile id or ARN, for example `claude` for
/// `us.anthropic.claude-3-5-haiku-20241022-v1:0`.
pub fn model_family(model_id: &str) -> String {
    let id = model_id.rsplit('/').next().unwrap_or(model_id);
    let parts: Vec<&str> = id.split('.').collect();
    let model = match parts.as_slice() {
        [_, _, model, ..] if parts[0].len() <= 6 && !parts[1].is_empty() => model,
        [_, model, ..] => model,
        [model] => model,
        [] => "model",
    };
    let family = model.split(['-', ':']).next().unwrap_or("model");
    if family.is_empty() {
        "model".to_owned()
    } else {
        family.to_owned()
    }
}

/// The hex sha256 of the parts, separated so that ("ab", "c") and ("a", "bc") differ.
pub fn hash_hex(parts: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    hex::encode(hasher.finalize())
}

/// A random number generator seeded by the first 16 hex digits of `hash`.
pub fn rng_from_hash(hash: &str) -> fastrand::Rng {
    let seed = u64::from_str_radix(hash.get(..16).unwrap_or("0"), 16).unwrap_or(0);
    fastrand::Rng::with_seed(seed)
}

/// `word` with its first letter upper-cased.
pub fn capitalize(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_words_drop_short_and_common_words() {
        let words = key_words("List the sections of a brief on Renewable energy, and the energy markets in 2026.");
        assert_eq!(words, ["sections", "brief", "renewable", "energy", "markets"]);
    }

    #[test]
    fn model_family_reads_ids_profiles_and_arns() {
        assert_eq!(model_family("anthropic.claude-3-5-haiku-20241022-v1:0"), "claude");
        assert_eq!(model_family("us.anthropic.claude-3-5-haiku-20241022-v1:0"), "claude");
        assert_eq!(model_family("amazon.nova-lite-v1:0"), "nova");
        assert_eq!(
            model_family("arn:aws:bedrock:us-east-1:123456789012:inference-profile/eu.meta.llama3-2-1b-instruct-v1:0"),
            "llama3"
        );
        assert_eq!(model_family("mistral"), "mistral");
    }

    #[test]
    fn hash_separates_parts() {
        assert_ne!(hash_hex(&[b"ab", b"c"]), hash_hex(&[b"a", b"bc"]));
        assert_eq!(hash_hex(&[b"x"]).len(), 64);
    }
}
