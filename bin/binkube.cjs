#!/usr/bin/env node
// binkube CLI entry: TypeScript sources run through tsx's CommonJS loader (no build step).
require("tsx/cjs/api").register();
require("../src/cli/main.ts");
