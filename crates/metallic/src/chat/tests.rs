use super::*;

/// SmolLM2-Instruct's template, as stored in its GGUF (literal newlines inside
/// the string literals).
const SMOLLM: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

fn render(source: &str, messages: &[Message], gen: bool) -> Result<String> {
    ChatTemplate::new(source, "<s>", "</s>")?.render(messages, gen)
}

fn template_error_text(r: Result<String>) -> String {
    match r {
        Err(Error::Template(msg)) => msg,
        other => panic!("expected a template error, got {other:?}"),
    }
}

#[test]
fn chatml_template_renders_turns_and_generation_prompt() {
    let msgs = [
        Message::user("Hi"),
        Message::assistant("Hello!"),
        Message::user("Bye"),
    ];
    let out = render(SMOLLM, &msgs, true).unwrap();
    assert_eq!(
        out,
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n\
         <|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n\
         <|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n"
    );
    let out = render(SMOLLM, &[Message::system("S"), Message::user("U")], false).unwrap();
    assert_eq!(
        out,
        "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n"
    );
}

#[test]
fn whitespace_control_matches_transformers() {
    // trim_blocks drops the newline after a tag, lstrip_blocks the indent
    // before it, and the template's final newline is not kept.
    let src = "  {% if true %}\nA\n  {% endif %}\nB\n";
    assert_eq!(render(src, &[], false).unwrap(), "A\nB");
    // `{{ }}` expressions are not blocks: their newline stays.
    assert_eq!(render("{{ 'x' }}\ny\n", &[], false).unwrap(), "x\ny");
}

#[test]
fn python_string_methods_are_available() {
    let src = "{{ messages[0].content.strip().upper() }}|{{ messages[0].content.startswith(' a') }}|{{ 'a,b'.split(',') | length }}";
    let out = render(src, &[Message::user(" ab ")], false).unwrap();
    // Booleans print as Python does, like Jinja2.
    assert_eq!(out, "AB|True|2");
}

#[test]
fn context_has_special_tokens_and_no_tools() {
    let src = "{{ bos_token }}{% if tools is none %}none{% endif %}{% if not tools %}!{% endif %}{{ eos_token }}";
    assert_eq!(render(src, &[], false).unwrap(), "<s>none!</s>");
}

#[test]
fn loop_controls_are_enabled() {
    let src = "{% for m in messages %}{% if loop.index > 1 %}{% break %}{% endif %}{{ m.content }}{% endfor %}";
    let msgs = [Message::user("a"), Message::user("b")];
    assert_eq!(render(src, &msgs, false).unwrap(), "a");
}

#[test]
fn raise_exception_is_a_template_error() {
    let src = "{% if messages[0].role != 'user' %}{{ raise_exception('roles must alternate') }}{% endif %}ok";
    assert_eq!(render(src, &[Message::user("x")], false).unwrap(), "ok");
    let msg = template_error_text(render(src, &[Message::assistant("x")], false));
    assert!(msg.contains("roles must alternate"), "{msg}");
}

#[test]
fn syntax_errors_are_template_errors() {
    match ChatTemplate::new("{% if %}", "", "") {
        Err(Error::Template(msg)) => assert!(msg.contains("syntax"), "{msg}"),
        other => panic!("expected a template error, got {other:?}"),
    }
    // Errors at render time too: iterating over a number.
    let msg = template_error_text(render("{% for x in 3 %}{% endfor %}", &[], false));
    assert!(!msg.is_empty());
}

#[test]
fn tojson_uses_python_json_dumps_spacing() {
    let src = r#"{{ {"a": [1, "x\"<é"], "b": none, "c": true} | tojson }}"#;
    assert_eq!(
        render(src, &[], false).unwrap(),
        r#"{"a": [1, "x\"<é"], "b": null, "c": true}"#
    );
    let src = r#"{{ {"a": [1, 2], "b": {}} | tojson(indent=2) }}"#;
    assert_eq!(
        render(src, &[], false).unwrap(),
        "{\n  \"a\": [\n    1,\n    2\n  ],\n  \"b\": {}\n}"
    );
}
