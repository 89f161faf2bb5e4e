//! The SAM template passes `cfn-lint` and `sam validate --lint` (both offline, from the
//! venv `scripts/test` installs), and a broken copy of it does not, so the check is real.

use std::path::PathBuf;
use std::process::Command;

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn tool(variable: &str, name: &str) -> PathBuf {
    let path = std::env::var_os(variable)
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join(".venv/sam/bin").join(name));
    assert!(
        path.is_file(),
        "{} is missing ({variable}): run scripts/test, which installs aws-sam-cli and cfn-lint",
        path.display()
    );
    path
}

fn run(command: &mut Command) -> (bool, String) {
    let output = command
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("SAM_CLI_TELEMETRY", "0")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

fn cfn_lint(template: &std::path::Path) -> (bool, String) {
    run(Command::new(tool("INBOX_CFN_LINT", "cfn-lint")).arg(template))
}

fn sam_validate(template: &std::path::Path) -> (bool, String) {
    run(Command::new(tool("INBOX_SAM", "sam"))
        .args(["validate", "--lint", "--template"])
        .arg(template))
}

#[test]
fn the_template_passes_cfn_lint_and_sam_validate() {
    let template = workspace().join("template.yaml");
    let (ok, output) = cfn_lint(&template);
    assert!(ok, "cfn-lint: {output}");
    let (ok, output) = sam_validate(&template);
    assert!(ok, "sam validate: {output}");
    assert!(output.contains("is a valid SAM Template"), "{output}");
}

#[test]
fn a_broken_template_is_caught() {
    let text = std::fs::read_to_string(workspace().join("template.yaml")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("template.yaml");
    for (from, to) in [
        ("StreamViewType: NEW_IMAGE", "StreamViewType: NEW_IMAGES"),
        ("MemorySize: 512", "MemorySize: 99999999"),
        (
            "Value: !GetAtt DeadWebhooksQueue.QueueName",
            "Value: !GetAtt DeadWebhooksQueue.Name",
        ),
    ] {
        assert!(text.contains(from));
        std::fs::write(&broken, text.replacen(from, to, 1)).unwrap();
        let (ok, output) = cfn_lint(&broken);
        assert!(!ok, "cfn-lint accepted {to:?}: {output}");
    }
}
