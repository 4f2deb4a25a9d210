// The supervisor console: review queue, hand-offs, KPIs, audit log and knowledge base.
// One module per screen under console/ (shared helpers in console/common.js); this file only re-exports them,
// so app.js keeps importing "./console.js". Every screen is mountX(root, ctx) and returns a cleanup function.

export { mountReview } from "./console/review.js";
export { mountHandoffs } from "./console/handoffs.js";
export { mountKpis } from "./console/kpis.js";
export { mountAudit } from "./console/audit.js";
export { mountKnowledge } from "./console/knowledge.js";
