// Unsaved mask drafts in IndexedDB, one per study: they survive a reload, a crash or a closed tab.
const DB = "boneage", STORE = "mask-drafts";

function open() {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(DB, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(STORE);
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

async function run(mode, fn) {
  const db = await open();
  return new Promise((resolve, reject) => {
    const tx = db.transaction(STORE, mode), request = fn(tx.objectStore(STORE));
    tx.oncomplete = () => { db.close(); resolve(request && request.result); };
    tx.onerror = () => { db.close(); reject(tx.error); };
  });
}

export const drafts = {
  /** draft: {base, width, height, mask: Uint8Array, savedAt, steps} */
  put: (study, draft) => run("readwrite", (s) => s.put(draft, String(study))),
  get: (study) => run("readonly", (s) => s.get(String(study))),
  remove: (study) => run("readwrite", (s) => s.delete(String(study))),
};
