#!/usr/bin/env node
// Checks the KQL under infra/queries/ without an Azure subscription: every *.kql file is parsed
// and analyzed by Kusto.Language (Microsoft's KQL parser and semantic analyzer, npm package
// @kusto/language-service-next) against the Application Insights tables the workbook and the
// log alerts query (classic names: requests, dependencies, customMetrics, traces, exceptions),
// so a misspelt column, function or operator fails here rather than in the portal. Also checks
// that every loadTextContent() path in infra/**/*.bicep names a file that exists, and that
// every query file is used by some Bicep file.
//
//   node scripts/check-kql.js <directory holding node_modules/@kusto/language-service-next>
//
// scripts/check-infra.sh installs the package into target/kql-check and runs this.
"use strict";

const fs = require("fs");
const path = require("path");

const moduleRoot = process.argv[2];
if (!moduleRoot) {
  console.error("usage: check-kql.js <directory with node_modules/@kusto/language-service-next>");
  process.exit(2);
}
const pkg = path.join(path.resolve(moduleRoot), "node_modules", "@kusto", "language-service-next");
// The Bridge.NET runtime first (it defines the globals System and Bridge), then Kusto.Language.
require(path.join(pkg, "bridge.js"));
require(path.join(pkg, "Kusto.Language.Bridge.js"));
/* global Kusto */
const K = Kusto.Language;

const root = path.resolve(__dirname, "..");
const queriesDir = path.join(root, "infra", "queries");

// The classic Application Insights schema (the component's tables, as the workbook and the log
// alert rules scoped to the component see them).
const common =
  "operation_Name:string, operation_Id:string, operation_ParentId:string, operation_SyntheticSource:string, " +
  "session_Id:string, user_Id:string, user_AuthenticatedId:string, user_AccountId:string, " +
  "application_Version:string, client_Type:string, client_Model:string, client_OS:string, client_IP:string, " +
  "client_City:string, client_StateOrProvince:string, client_CountryOrRegion:string, client_Browser:string, " +
  "cloud_RoleName:string, cloud_RoleInstance:string, appId:string, appName:string, iKey:string, " +
  "sdkVersion:string, itemId:string, itemType:string, itemCount:int";
const tables = {
  requests:
    "timestamp:datetime, id:string, source:string, name:string, url:string, success:bool, resultCode:string, " +
    "duration:real, performanceBucket:string, customDimensions:dynamic, customMeasurements:dynamic, " + common,
  dependencies:
    "timestamp:datetime, id:string, target:string, type:string, name:string, data:string, success:bool, " +
    "resultCode:string, duration:real, performanceBucket:string, customDimensions:dynamic, " +
    "customMeasurements:dynamic, " + common,
  customMetrics:
    "timestamp:datetime, name:string, value:real, valueCount:int, valueSum:real, valueMin:real, valueMax:real, " +
    "valueStdDev:real, customDimensions:dynamic, " + common,
  traces:
    "timestamp:datetime, message:string, severityLevel:int, customDimensions:dynamic, customMeasurements:dynamic, " +
    common,
  exceptions:
    "timestamp:datetime, problemId:string, handledAt:string, type:string, message:string, assembly:string, " +
    "method:string, outerType:string, outerMessage:string, outerAssembly:string, outerMethod:string, " +
    "innermostType:string, innermostMessage:string, innermostAssembly:string, innermostMethod:string, " +
    "severityLevel:int, details:dynamic, customDimensions:dynamic, customMeasurements:dynamic, " + common,
};
const symbols = Object.entries(tables).map(
  ([name, schema]) => new K.Symbols.TableSymbol.$ctor7(name, `(${schema})`, null),
);
const database = new K.Symbols.DatabaseSymbol.$ctor3("ApplicationInsights", null, symbols, false);
const globals = K.GlobalState.Default.WithDatabase(database);

function list(readOnlyList) {
  const out = [];
  for (let i = 0; i < readOnlyList.Count; i++) {
    out.push(System.Linq.Enumerable.from(readOnlyList).elementAt(i));
  }
  return out;
}

function lineAndColumn(text, offset) {
  const before = text.slice(0, offset);
  const line = before.split("\n").length;
  return `${line}:${offset - before.lastIndexOf("\n")}`;
}

let failed = 0;
const files = fs.readdirSync(queriesDir).filter((f) => f.endsWith(".kql")).sort();
if (files.length === 0) {
  console.error(`check-kql: no .kql files in ${queriesDir}`);
  process.exit(1);
}
for (const file of files) {
  const text = fs.readFileSync(path.join(queriesDir, file), "utf8");
  const code = K.KustoCode.ParseAndAnalyze(text, globals);
  const diagnostics = list(code.GetDiagnostics());
  const errors = diagnostics.filter((d) => String(d.Severity) === "Error");
  for (const d of diagnostics) {
    const where = `infra/queries/${file}:${lineAndColumn(text, d.Start)}`;
    console.log(`  ${String(d.Severity).toUpperCase()} ${where} ${d.Code} ${d.Message}`);
  }
  if (errors.length > 0) {
    failed++;
  } else {
    // The type of what the query returns, as the analyzer sees it: a check that it returns rows.
    const result = code.ResultType;
    if (!result || !(result instanceof K.Symbols.TableSymbol)) {
      console.log(`  ERROR infra/queries/${file}: does not return a table`);
      failed++;
      continue;
    }
    const columns = list(result.Columns).map((c) => `${c.Name}:${c.Type.Name}`);
    console.log(`  ok infra/queries/${file} -> (${columns.join(", ")})`);
  }
}

// Every loadTextContent('…') in the Bicep names an existing file, and every query is used.
const used = new Set();
function walk(dir) {
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) {
      walk(full);
    } else if (entry.name.endsWith(".bicep")) {
      const text = fs.readFileSync(full, "utf8");
      for (const match of text.matchAll(/loadTextContent\(\s*'([^']+)'/g)) {
        const target = path.resolve(path.dirname(full), match[1]);
        if (!fs.existsSync(target)) {
          console.log(`  ERROR ${path.relative(root, full)}: loadTextContent('${match[1]}') names no file`);
          failed++;
        }
        used.add(target);
      }
    }
  }
}
walk(path.join(root, "infra"));
for (const file of files) {
  if (!used.has(path.join(queriesDir, file))) {
    console.log(`  ERROR infra/queries/${file}: no Bicep file loads it (loadTextContent)`);
    failed++;
  }
}

if (failed > 0) {
  console.error(`check-kql: ${failed} problem(s)`);
  process.exit(1);
}
console.log(`check-kql: ${files.length} queries parse and analyze cleanly; every loadTextContent path exists`);
