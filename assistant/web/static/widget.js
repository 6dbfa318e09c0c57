/* The hospital widget: one <script> tag on the hospital's site draws a launcher button and opens the
 * chat in an iframe to /embed?hospital=ID. The launcher lives in a shadow root with inline
 * !important styles on its host element, so the host page's CSS cannot restyle or hide it, and the chat
 * is in another (cross-origin) document, so the host page's scripts cannot read the conversation.
 *
 *   <script src="https://ASSISTANT/widget.js" data-hospital="renji" data-lang="en"
 *           data-position="right" data-color="#0b6e4f" async></script>
 */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || !script.src) { return; }
  var hospital = script.getAttribute("data-hospital") || "";
  if (!/^[a-z0-9_-]{1,64}$/.test(hospital)) {
    if (window.console) { console.error("care widget: set data-hospital to a hospital id, e.g. data-hospital=\"renji\""); }
    return;
  }
  var origin = new URL(script.src, document.baseURI).origin;
  var lang = /^(en|zh)$/.test(script.getAttribute("data-lang") || "") ? script.getAttribute("data-lang") : "";
  var side = script.getAttribute("data-position") === "left" ? "left" : "right";
  var color = /^#[0-9a-fA-F]{3,8}$/.test(script.getAttribute("data-color") || "") ? script.getAttribute("data-color") : "#0b6e4f";
  var label = lang === "zh" ? "在线咨询：找到合适的科室" : "Find the right department";

  function important(element, styles) {
    Object.keys(styles).forEach(function (name) { element.style.setProperty(name, styles[name], "important"); });
  }

  function mount() {
    var host = document.createElement("care-widget");
    host.setAttribute("data-hospital", hospital);
    important(host, {"display": "block", "position": "fixed", "bottom": "20px", "z-index": "2147483000",
      "width": "auto", "height": "auto", "margin": "0", "padding": "0", "border": "0", "background": "transparent",
      "visibility": "visible", "opacity": "1", "transform": "none", "filter": "none", "clip-path": "none"});
    host.style.setProperty(side, "20px", "important");
    var root = host.attachShadow({mode: "open"});
    var style = document.createElement("style");
    style.textContent =
      ":host{all:initial}" +
      ".launcher{all:initial;display:flex;align-items:center;gap:8px;cursor:pointer;background:" + color + ";color:#fff;" +
      "font:600 15px/1.2 system-ui,-apple-system,'Segoe UI',sans-serif;padding:12px 18px;border-radius:24px;" +
      "box-shadow:0 4px 14px rgba(0,0,0,.25)}" +
      ".launcher:focus-visible{outline:3px solid #111;outline-offset:2px}" +
      ".panel{all:initial;display:none;position:absolute;bottom:60px;" + side + ":0;width:min(420px,calc(100vw - 40px));" +
      "height:min(640px,calc(100vh - 100px));background:#fff;border-radius:12px;overflow:hidden;" +
      "box-shadow:0 8px 30px rgba(0,0,0,.3)}" +
      ".panel.open{display:block}" +
      ".close{all:initial;position:absolute;top:6px;" + (side === "left" ? "left" : "right") + ":8px;cursor:pointer;" +
      "font:700 20px/1 system-ui,sans-serif;color:#444;background:#fff;border-radius:50%;width:28px;height:28px;" +
      "text-align:center;z-index:1}" +
      "iframe{all:initial;display:block;width:100%;height:100%;border:0}";
    var panel = document.createElement("div");
    panel.className = "panel";
    panel.setAttribute("role", "dialog");
    panel.setAttribute("aria-label", label);
    var close = document.createElement("button");
    close.className = "close";
    close.setAttribute("aria-label", "Close");
    close.textContent = "\u00d7";
    var button = document.createElement("button");
    button.className = "launcher";
    button.setAttribute("aria-expanded", "false");
    button.textContent = label;
    var frame = null;

    function toggle(open) {
      if (open && !frame) {
        frame = document.createElement("iframe");
        frame.title = label;
        frame.src = origin + "/embed/?hospital=" + encodeURIComponent(hospital) + (lang ? "&lang=" + lang : "");
        frame.setAttribute("referrerpolicy", "strict-origin");
        panel.appendChild(frame);
      }
      panel.classList.toggle("open", open);
      button.setAttribute("aria-expanded", open ? "true" : "false");
    }
    button.addEventListener("click", function () { toggle(!panel.classList.contains("open")); });
    close.addEventListener("click", function () { toggle(false); button.focus(); });
    panel.appendChild(close);
    root.appendChild(style);
    root.appendChild(panel);
    root.appendChild(button);
    document.body.appendChild(host);
  }

  if (document.body) { mount(); } else { document.addEventListener("DOMContentLoaded", mount); }
})();
