// (a) The floor: a JS Worker that does nothing but answer. `bench edge`
// serves it beside Offload in the same `workerd serve`.
const BODY = '{"ok":true}';
export default {
  fetch() {
    return new Response(BODY, { headers: { 'content-type': 'application/json' } });
  },
};
