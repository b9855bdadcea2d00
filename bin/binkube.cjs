#!/usr/bin/env node
// binkube CLI entry: dist/ when it matches the sources, else the TypeScript through tsx (bin/entry.cjs).
// `binkube step` (what Terraform runs per resource) goes through a step server when it can.
if (process.argv[2] === "step") require("./step-client.cjs").main();
else require("./entry.cjs").load("src/cli/main");
