// The path routes are matched against. A request must not dodge a route with `/api/1/./ping`,
// `/api//1/ping`, `/api/1/x/../ping` or `/api/1/%70ing`; the raw path is still what is forwarded.
//
// Steps: drop the query; decode percent-escapes of unreserved characters (A-Z a-z 0-9 - . _ ~) and
// of "/" (Werkzeug and Starlette both decode %2F before routing, so the backend sees a slash);
// collapse runs of "/"; resolve "." and ".." segments (never above the root); drop one trailing "/".

const UNRESERVED = /%(2[dDeEfF]|3[0-9]|4[1-9a-fA-F]|5[0-9aA]|5[fF]|6[1-9a-fA-F]|7[0-9aA]|7[eE])/g;

export function normalizePath(target: string): string {
  const q = target.indexOf("?");
  let path = q === -1 ? target : target.slice(0, q);
  // Fast path: nothing to decode, no dot or double-slash segments, no trailing slash.
  if (!path.includes("%") && !path.includes("//") && !path.includes("/.") && (path.length === 1 || !path.endsWith("/"))) return path;
  if (path.includes("%")) path = path.replace(UNRESERVED, (m) => String.fromCharCode(parseInt(m.slice(1), 16)));
  const out: string[] = [];
  for (const seg of path.split("/")) {
    if (seg === "" || seg === ".") continue;
    if (seg === "..") out.pop();
    else out.push(seg);
  }
  return `/${out.join("/")}`;
}
