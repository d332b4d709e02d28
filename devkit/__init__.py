"""Development kit: the real program, through the plain `pulumi` CLI, against the local RunPod
emulator. Shared by the end-to-end tests (tests/engine), the benchmarks (bench/) and the demo
(scripts/demo.py); not part of the deployed program.

- `devkit.cli`: run `pulumi` commands as a user types them (`stack select`, `config set`, `preview`,
  `up`, `refresh`, `destroy`, `stack output --json`) in a project directory, on a file:// backend.
- `devkit.program`: a checkout of this project (the real Pulumi.yaml and __main__.py) in a scratch
  directory, and stacks of it configured as Pulumi.dev.yaml against an emulator.
"""
