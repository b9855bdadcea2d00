#!/usr/bin/env node
// binkube CLI entry: dist/ when it matches the sources, else the TypeScript through tsx (bin/entry.cjs).
require("./entry.cjs").load("src/cli/main");
