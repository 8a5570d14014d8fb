// Checks a latentmint provenance signature with ethers' EIP-712 implementation, independent of
// the Rust side: reads the typed data `latentmint provenance --typed-data` prints (file given as
// the first argument) and the signature (second argument), prints the struct hash the data
// gives and the address the signature recovers to, as JSON.
import { readFileSync } from "node:fs";
import { TypedDataEncoder, verifyTypedData } from "ethers";

const [file, signature] = process.argv.slice(2);
if (!file || !signature) {
  console.error("usage: node verify.mjs TYPED_DATA.json 0xSIGNATURE");
  process.exit(2);
}
const typed = JSON.parse(readFileSync(file, "utf8"));
// ethers derives the domain's type itself and refuses it in `types`.
const { EIP712Domain, ...types } = typed.types;
const hash = TypedDataEncoder.hash(typed.domain, types, typed.message);
const signer = verifyTypedData(typed.domain, types, typed.message, signature);
process.stdout.write(JSON.stringify({ hash, signer }) + "\n");
