//! What of the scripts runs without a build: `scripts/dev-secrets`, which gives the
//! database `scripts/run` serves development secrets of its own.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scripts")
        .join(name)
}

/// Runs `scripts/dev-secrets DIR`: the path it prints, and all it says (stdout and stderr).
fn dev_secrets(dir: &Path) -> (PathBuf, String) {
    let output = Command::new(script("dev-secrets"))
        .arg(dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(output.status.success(), "{stdout}{stderr}");
    (PathBuf::from(stdout.trim_end()), stdout + &stderr)
}

/// The `NAME=value` lines of a secrets file, in order.
fn secrets(file: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (name, value) = line.split_once('=').unwrap();
            (name.to_owned(), value.to_owned())
        })
        .collect()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn dev_secrets_are_made_once_random_and_private_then_reused_unshown() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join(".inbox");
    let (file, said) = dev_secrets(&dir);
    assert_eq!(file, dir.join("dev-secrets.env"));
    assert_eq!(mode(&file), 0o600, "{}", file.display());
    assert_eq!(mode(&dir), 0o700, "{}", dir.display());
    let made = secrets(&file);
    let names: Vec<&str> = made.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        names,
        [
            "INBOX_ADMIN_TOKEN",
            "INBOX_BIGCOMMERCE_SECRET",
            "INBOX_STRIPE_SECRET"
        ]
    );
    for (name, value) in &made {
        // 32 random bytes: long enough that the admin token draws no warning.
        assert_eq!(value.len(), 64, "{name}={value}");
        assert!(
            value
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
            "{name}={value}"
        );
        // Shown the once they are made.
        assert!(said.contains(value.as_str()), "{said}");
    }
    let distinct: BTreeSet<&str> = made.iter().map(|(_, value)| value.as_str()).collect();
    assert_eq!(distinct.len(), made.len());

    // Another database gets secrets of its own.
    let (other, _) = dev_secrets(&temp.path().join("other"));
    for (name, value) in secrets(&other) {
        assert!(!distinct.contains(value.as_str()), "{name} is shared");
    }

    // A later run keeps them, and says where they are without showing them.
    let (again, said) = dev_secrets(&dir);
    assert_eq!(again, file);
    assert_eq!(secrets(&file), made);
    assert_eq!(mode(&file), 0o600);
    assert!(said.contains("dev-secrets.env"), "{said}");
    for (name, value) in &made {
        assert!(!said.contains(value.as_str()), "{name} shown again: {said}");
    }
}

#[test]
fn dev_secrets_wants_a_directory() {
    let output = Command::new(script("dev-secrets")).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("usage"));
}
