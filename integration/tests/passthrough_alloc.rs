//! The pass-through path of every hook allocates nothing inside zio: with
//! nothing tracked, each hooked symbol, called 200 times with small sizes
//! by integration/c/passthrough_alloc.c, leaves zio's heap allocation count
//! (`zio_counter("heap_allocations")`) unchanged. That path must be
//! async-signal-safe and as cheap as the libc call it forwards to.

use std::process::Command;

use zio_integration::{compile_c, run, TempDir};

#[test]
fn no_hook_allocates_on_its_pass_through_path() {
    let dir = TempDir::new("passthrough-alloc");
    let bin = compile_c("passthrough_alloc", dir.path());
    let mut cmd = Command::new(&bin);
    cmd.arg(dir.path());
    let z = run(cmd, true, None);
    z.assert_success("passthrough_alloc under zio");
    let out = z.stdout();
    assert!(out.ends_with("done\n"), "{out}");

    let allocations: Vec<(&str, i64)> = out
        .lines()
        .filter_map(|l| {
            let (hook, n) = l.split_once(" allocations=")?;
            Some((hook, n.parse().ok()?))
        })
        .collect();
    let hooks: Vec<&str> = allocations
        .iter()
        .map(|&(h, _)| h)
        .filter(|&h| h != "engine")
        .collect();
    let listed: Vec<&str> = include_str!("../../libzio/hooked-symbols.txt")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(hooks, listed, "the program must call every hooked symbol");

    let allocating: Vec<String> = allocations
        .iter()
        .filter(|&&(h, n)| h != "engine" && n != 0)
        .map(|(h, n)| format!("{h}: {n} allocations in 200 calls"))
        .collect();
    assert!(
        allocating.is_empty(),
        "hooks that allocate on their pass-through path:\n{}",
        allocating.join("\n")
    );
    // The counter is live: starting the engine allocates.
    let engine = allocations.iter().find(|&&(h, _)| h == "engine");
    assert!(matches!(engine, Some(&(_, n)) if n > 0), "{out}");
}
