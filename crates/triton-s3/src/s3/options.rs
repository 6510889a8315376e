//! Checking what users write for the storage class and tags of uploads,
//! and the `x-amz-tagging` header made from the tags.

use aws_sdk_s3::types::StorageClass;

/// S3's limits on object tags.
const MAX_TAGS: usize = 10;
const MAX_TAG_KEY_CHARS: usize = 128;
const MAX_TAG_VALUE_CHARS: usize = 256;

/// A storage class as users write it (`STANDARD_IA`, `GLACIER_IR`,
/// `INTELLIGENT_TIERING`; case does not matter), refusing names S3 does not
/// know with the list of those it does.
pub fn parse_storage_class(input: &str) -> Result<StorageClass, String> {
    let name = input.trim().to_ascii_uppercase();
    if StorageClass::values().contains(&name.as_str()) {
        return Ok(StorageClass::from(name.as_str()));
    }
    Err(format!(
        "unknown S3 storage class {input:?}; valid: {}",
        StorageClass::values().join(", ")
    ))
}

/// One object tag as users write it, `key=value` (the value may be empty
/// and may contain `=`), checked against S3's rules: a key of 1 to 128
/// characters not starting with `aws:`, a value of up to 256, both of
/// letters, digits, spaces and `+ - = . _ : / @`.
pub fn parse_tag(input: &str) -> Result<(String, String), String> {
    let Some((key, value)) = input.split_once('=') else {
        return Err(format!("tag {input:?} is not key=value"));
    };
    if key.is_empty() {
        return Err(format!("tag {input:?} has an empty key"));
    }
    if key.chars().count() > MAX_TAG_KEY_CHARS {
        return Err(format!(
            "tag key {key:?} is longer than {MAX_TAG_KEY_CHARS} characters"
        ));
    }
    if value.chars().count() > MAX_TAG_VALUE_CHARS {
        return Err(format!(
            "the value of tag {key:?} is longer than {MAX_TAG_VALUE_CHARS} characters"
        ));
    }
    if key.to_ascii_lowercase().starts_with("aws:") {
        return Err(format!(
            "tag key {key:?}: keys starting with aws: are reserved"
        ));
    }
    let allowed = |c: char| c.is_alphanumeric() || " +-=._:/@".contains(c);
    if let Some(c) = key.chars().chain(value.chars()).find(|&c| !allowed(c)) {
        return Err(format!(
            "tag {input:?} has the character {c:?}; S3 allows letters, digits, spaces and + - = . _ : / @"
        ));
    }
    Ok((key.to_string(), value.to_string()))
}

/// Checks a set of tags parsed by [`parse_tag`]: at most 10 (S3's limit
/// per object), no key twice.
pub fn check_tags(tags: &[(String, String)]) -> Result<(), String> {
    if tags.len() > MAX_TAGS {
        return Err(format!(
            "{} tags; S3 allows at most {MAX_TAGS} per object",
            tags.len()
        ));
    }
    for (i, (key, _)) in tags.iter().enumerate() {
        if tags[..i].iter().any(|(k, _)| k == key) {
            return Err(format!("tag key {key:?} is given twice"));
        }
    }
    Ok(())
}

/// The `x-amz-tagging` header: URL query encoding (`k=v&k2=v2`), with
/// spaces as `%20` rather than `+`.
pub(super) fn tagging_header(tags: &[(String, String)]) -> Option<String> {
    if tags.is_empty() {
        return None;
    }
    let encoded = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(tags)
        .finish();
    // The serializer writes a space as `+` and a `+` as `%2B`, so every
    // `+` left is a space.
    Some(encoded.replace('+', "%20"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_classes() {
        assert_eq!(
            parse_storage_class("STANDARD_IA"),
            Ok(StorageClass::StandardIa)
        );
        assert_eq!(
            parse_storage_class("glacier_ir"),
            Ok(StorageClass::GlacierIr)
        );
        assert_eq!(
            parse_storage_class("INTELLIGENT_TIERING"),
            Ok(StorageClass::IntelligentTiering)
        );
        assert_eq!(parse_storage_class("STANDARD"), Ok(StorageClass::Standard));
        for bad in ["", "STANDARD-IA", "COLD", "glacier ir"] {
            let e = parse_storage_class(bad).unwrap_err();
            assert!(
                e.contains("unknown") && e.contains("STANDARD_IA") && e.contains("GLACIER_IR"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn tags() {
        let tag = |k: &str, v: &str| (k.to_string(), v.to_string());
        assert_eq!(parse_tag("team=data"), Ok(tag("team", "data")));
        assert_eq!(parse_tag("empty="), Ok(tag("empty", "")));
        assert_eq!(parse_tag("expr=a=b"), Ok(tag("expr", "a=b")));
        assert_eq!(
            parse_tag("Cost Centre=R+D 1"),
            Ok(tag("Cost Centre", "R+D 1"))
        );
        assert_eq!(parse_tag("prénom=Zoë"), Ok(tag("prénom", "Zoë")));
        let long_key = format!("{}=v", "k".repeat(128));
        assert!(parse_tag(&long_key).is_ok());
        let long_value = format!("k={}", "é".repeat(256));
        assert!(parse_tag(&long_value).is_ok());
        for (bad, why) in [
            ("novalue", "key=value"),
            ("=v", "empty key"),
            (&format!("{}=v", "k".repeat(129)), "longer than 128"),
            (&format!("k={}", "v".repeat(257)), "longer than 256"),
            ("aws:created=x", "reserved"),
            ("AWS:x=y", "reserved"),
            ("a&b=c", "'&'"),
            ("k=v;w", "';'"),
            ("k=line\nbreak", "'\\n'"),
        ] {
            let e = parse_tag(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
        let ten: Vec<_> = (0..10).map(|i| tag(&format!("k{i}"), "v")).collect();
        assert_eq!(check_tags(&ten), Ok(()));
        let mut eleven = ten.clone();
        eleven.push(tag("k10", "v"));
        assert!(check_tags(&eleven).unwrap_err().contains("at most 10"));
        let twice = [tag("a", "1"), tag("b", "2"), tag("a", "3")];
        assert!(check_tags(&twice).unwrap_err().contains("twice"));
    }

    #[test]
    fn tagging_header_is_url_encoded() {
        let tag = |k: &str, v: &str| (k.to_string(), v.to_string());
        assert_eq!(tagging_header(&[]), None);
        assert_eq!(
            tagging_header(&[tag("team", "data"), tag("env", "prod")]).as_deref(),
            Some("team=data&env=prod")
        );
        assert_eq!(
            tagging_header(&[tag("Cost Centre", "a+b=c/d:@é")]).as_deref(),
            Some("Cost%20Centre=a%2Bb%3Dc%2Fd%3A%40%C3%A9")
        );
    }
}
