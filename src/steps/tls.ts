// TLS settings shared by every server binkube configures (apiserver, kubelet, etcd): the CIS
// Kubernetes Benchmark's strong cipher suites (1.2.35, 4.2.13), limited to ECDHE key exchange
// with AEAD ciphers. The RSA suites matter here (binkube's keys are RSA); Go picks TLS 1.3
// suites on its own.
export const TLS_CIPHER_SUITES = [
  "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
  "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
  "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
  "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
  "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
  "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
];
