// cdktf app entry (cdktf.json "app"): dist/main.js when it matches the sources, else main.ts through tsx.
require("./entry.cjs").load("main");
