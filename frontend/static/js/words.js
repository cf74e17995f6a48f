// Words for people (issue 32, row 10): review decisions and audit records as sentences, and a server's reason split
// from the exception text behind it (which goes to a tooltip, for whoever fixes it).

const REASONS = { model_vs_label: "model vs label", label_vs_label: "label vs label", mask_vs_mask: "mask vs mask",
                  model_unsure: "model unsure", model_outside: "outside this model's experience" };

export function reasonWords(reason) { return REASONS[reason] || String(reason || "").replaceAll("_", " "); }

const months = (value) => `${+(+value).toFixed(1)} months`;

/** "olivia accepted the label: 223 months is the gold value." from a decision and its outcome. */
export function decisionSentence(who, decision, outcome) {
  const o = outcome || {};
  const blind = o.blind_months != null ? ` Their own blind reading was ${months(o.blind_months)}.` : "";
  switch (decision) {
    case "accept_label": return `${who} accepted the label${o.months != null ? `: ${months(o.months)} is the gold value` : ""}.${blind}`;
    case "accept_model": return (o.months != null ? `${who} accepted the model's reading: ${months(o.months)} is the gold value.`
      : `${who} accepted the model's mask as the gold mask.`) + blind;
    case "new_value": return `${who} set a new gold value: ${o.months != null ? months(o.months) : "hidden"}.${blind}`;
    case "mask": return `${who} drew a corrected mask; it is the gold mask.`;
    case "dismiss": return `${who} dismissed the item${o.reason ? `: ${o.reason}` : "."}${o.reason && !/[.!?]$/.test(o.reason) ? "." : ""}`;
    default: return `${who} decided (${String(decision || "").replaceAll("_", " ")}).`;
  }
}

/** Why an item closed itself ("cause gone after label change") as a sentence. */
export function closedSentence(why) {
  const cause = /^cause gone after (\w+) change$/.exec(why || "");
  if (cause) return `It closed itself: the disagreement went away after a ${cause[1].replaceAll("_", " ")} change.`;
  return why ? `It closed itself: ${why}.` : "It closed itself.";
}

const ARTICLE_SOURCES = { canny: "an automatic (Canny) mask", model: "the model's mask", expert: "an expert mask",
                          review: "a review mask" };
export function maskWords(source) { return ARTICLE_SOURCES[source] || "a mask"; }

/** A server's reason without the exception text it may end with: "The image data is truncated or corrupt: OSError:
 *  Truncated File Read" → { text: "The image data is truncated or corrupt.", technical: "OSError: Truncated File Read" }. */
export function forPeople(detail) {
  const text = String(detail || "");
  const found = /^(.*?):\s*((?:[A-Z]\w*\.)*[A-Z]\w*(?:Error|Exception|Panic)\b.*)$/s.exec(text);
  if (!found) return { text, technical: "" };
  const said = found[1].trim();
  return { text: /[.!?]$/.test(said) ? said : `${said}.`, technical: found[2].trim() };
}
