//! What `tokenizers` 0.22 accepts from `tokenizer.json` but panics on later, checked at load.

use serde_json::Value;

/// A `TemplateProcessing` post-processor (alone or in a `Sequence`) whose `single` or `pair`
/// template names a special token its `special_tokens` lacks, or whose special token has
/// unequal `ids` and `tokens`, panics at the first encode; this finds it at load.
pub(super) fn check_post_processor(tokenizer: &tokenizers::Tokenizer) -> Result<(), String> {
    let Some(processor) = tokenizer.get_post_processor() else { return Ok(()) };
    check_template(&serde_json::to_value(processor).map_err(|e| e.to_string())?)
}

fn check_template(v: &Value) -> Result<(), String> {
    match v["type"].as_str() {
        Some("Sequence") => v["processors"].as_array().into_iter().flatten().try_for_each(check_template),
        Some("TemplateProcessing") => {
            let empty = serde_json::Map::new();
            let specials = v["special_tokens"].as_object().unwrap_or(&empty);
            for (name, token) in specials {
                let len = |k: &str| token[k].as_array().map_or(0, Vec::len);
                if len("ids") != len("tokens") {
                    return Err(format!("post_processor special token `{name}` has {} ids but {} tokens", len("ids"), len("tokens")));
                }
            }
            let pieces = ["single", "pair"].into_iter().flat_map(|k| v[k].as_array().into_iter().flatten());
            for id in pieces.filter_map(|p| p["SpecialToken"]["id"].as_str()) {
                if !specials.contains_key(id) {
                    return Err(format!("post_processor template uses special token `{id}`, which its special_tokens does not define"));
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}
