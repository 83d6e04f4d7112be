// Verifies a key-signed Sigstore bundle (the appliance's RVA) with sigstore-js, an
// implementation independent of the appliance's Python code. Offline: the trust material is
// a trusted root (empty, or TRUSTED-ROOT: the appliance's transparency log, as
// 'stella log trusted-root' writes it) plus the one public key the bundle's hint names. With
// TRUSTED-ROOT, one transparency-log entry (its inclusion proof and signed checkpoint) is
// required; there is no certificate log or timestamp authority to require.
//
// usage: node verify-rva.js BUNDLE.json PUBLIC-KEY.pem [TRUSTED-ROOT.json]
// prints one JSON line {"ok": true, "keyid": ..., "payloadType": ..., "predicateType": ...}
// or {"ok": false, "error": ...} and exits 1.
'use strict';
const fs = require('fs');
const crypto = require('crypto');
const { bundleFromJSON } = require('@sigstore/bundle');
const { TrustedRoot } = require('@sigstore/protobuf-specs');
const { Verifier, toSignedEntity, toTrustMaterial } = require('@sigstore/verify');

function main(bundlePath, keyPath, rootPath) {
  const json = JSON.parse(fs.readFileSync(bundlePath, 'utf8'));
  const pem = fs.readFileSync(keyPath, 'utf8');
  const der = crypto.createPublicKey(pem).export({ type: 'spki', format: 'der' });
  const keyid = crypto.createHash('sha256').update(der).digest('hex');
  const bundle = bundleFromJSON(json);
  const hint = bundle.verificationMaterial.content.publicKey.hint;
  const root = TrustedRoot.fromJSON(rootPath
    ? JSON.parse(fs.readFileSync(rootPath, 'utf8'))
    : {
        mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1',
        tlogs: [],
        certificateAuthorities: [],
        ctlogs: [],
        timestampAuthorities: [],
      });
  const trust = toTrustMaterial(root, (wanted) => {
    if (wanted !== keyid) {
      throw new Error(`no trusted key for hint ${wanted}`);
    }
    return { publicKey: crypto.createPublicKey(pem), validFor: () => true };
  });
  const verifier = new Verifier(trust, {
    tlogThreshold: rootPath ? 1 : 0,
    ctlogThreshold: 0,
    timestampThreshold: 0,
  });
  verifier.verify(toSignedEntity(bundle));
  const envelope = bundle.content.dsseEnvelope;
  const statement = JSON.parse(Buffer.from(envelope.payload).toString('utf8'));
  return { ok: true, keyid: hint, payloadType: envelope.payloadType, predicateType: statement.predicateType };
}

try {
  process.stdout.write(JSON.stringify(main(process.argv[2], process.argv[3], process.argv[4])) + '\n');
} catch (e) {
  process.stdout.write(JSON.stringify({ ok: false, error: String(e && e.message ? e.message : e) }) + '\n');
  process.exit(1);
}
