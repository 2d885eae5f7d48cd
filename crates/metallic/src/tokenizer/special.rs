//! Splitting text on special tokens before BPE, as llama.cpp's
//! `tokenizer_st_partition` does: special tokens are tried longest first, and
//! each one splits every text fragment left by the longer ones.

/// A piece of the input: text still to be BPE-encoded, or a special token's id.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Fragment<'a> {
    Text(&'a str),
    Token(u32),
}

/// Splits `text` on every occurrence of each `(id, text)` in `specials`, in the
/// order given (callers sort them longest first).
pub(crate) fn partition<'a>(text: &'a str, specials: &[(u32, &str)]) -> Vec<Fragment<'a>> {
    let mut frags = Vec::new();
    if !text.is_empty() {
        frags.push(Fragment::Text(text));
    }
    for &(id, special) in specials {
        // An empty special would match everywhere; the vocabulary should not
        // have one, and matching it would loop forever.
        if special.is_empty() {
            continue;
        }
        let mut out = Vec::with_capacity(frags.len());
        for frag in frags {
            let Fragment::Text(mut rest) = frag else {
                out.push(frag);
                continue;
            };
            while let Some(pos) = rest.find(special) {
                if pos > 0 {
                    out.push(Fragment::Text(&rest[..pos]));
                }
                out.push(Fragment::Token(id));
                rest = &rest[pos + special.len()..];
            }
            if !rest.is_empty() {
                out.push(Fragment::Text(rest));
            }
        }
        frags = out;
    }
    frags
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_splits_longest_first() {
        let specials = [(7, "<|im_start|>"), (8, "<|im"), (9, "")];
        let frags = partition("a<|im_start|>b<|im<|im_start|>", &specials);
        assert_eq!(
            frags,
            vec![
                Fragment::Text("a"),
                Fragment::Token(7),
                Fragment::Text("b"),
                Fragment::Token(8),
                Fragment::Token(7),
            ]
        );
        assert!(partition("", &specials).is_empty());
    }
}
