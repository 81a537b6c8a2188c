// Deterministic pseudo-random numbers (mulberry32) for fault fractions and contact ids,
// so that a given seed replays the same run.

const ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/** Returns a function yielding floats in [0, 1), fully determined by `seed`. */
export function createRandom(seed) {
  let state = seed >>> 0;
  return function random() {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A 20-character alphanumeric id, shaped like the Contacts API's ids. */
export function randomId(random, length = 20) {
  let id = "";
  for (let i = 0; i < length; i += 1) {
    id += ID_ALPHABET[Math.floor(random() * ID_ALPHABET.length)];
  }
  return id;
}
