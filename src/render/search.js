// How a flame graph's search term is matched, in the SVG's own script (its `s=` parameter) and
// in the explorer (`?search=`): as a regular expression when it is one that matches in about
// linear time (no groups, no back-references, quantifiers only on a single character or class,
// at most one of them unbounded, at most 256 characters), otherwise as plain text. A crafted link
// can therefore never make the browser backtrack without end. `literal` says which was done.
function stackdPattern(term) {
  var t = String(term);
  var plain = { re: new RegExp(t.replace(/[.*+?^${}()|[\]\\\/]/g, "\\$&")), literal: true };
  if (t.length > 256) return plain;
  var unbounded = 0, atom = false;
  for (var i = 0; i < t.length; i++) {
    var c = t.charAt(i);
    if (c === "\\") {
      var n = t.charAt(i + 1);
      if (n === "" || /[1-9k]/.test(n)) return plain;
      i++;
      atom = true;
    } else if (c === "(" || c === ")") {
      return plain;
    } else if (c === "[") {
      var end = t.indexOf("]", i + 2);
      if (end < 0 || t.slice(i, end).indexOf("\\") >= 0) return plain;
      i = end;
      atom = true;
    } else if (c === "*" || c === "+" || c === "?" || c === "{") {
      if (!atom) return plain;
      if (c === "{") {
        var close = t.indexOf("}", i);
        if (close < 0 || !/^\{\d+(,\d*)?\}$/.test(t.slice(i, close + 1))) return plain;
        if (/,\}$/.test(t.slice(i, close + 1))) unbounded++;
        i = close;
      } else if (c !== "?") {
        unbounded++;
      }
      if (t.charAt(i + 1) === "?") i++;
      atom = false;
    } else {
      atom = !(c === "|" || c === "^" || c === "$");
    }
  }
  if (unbounded > 1) return plain;
  try {
    return { re: new RegExp(t), literal: false };
  } catch (e) {
    return plain;
  }
}
