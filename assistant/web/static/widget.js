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
  var ink = readableOn(color);
  var notAllowed = lang === "zh"
    ? "此网站尚未开通这个在线咨询。网站管理员可以请助手的运营方把 " + location.origin + " 加入该医院允许的网站。"
    : "This chat is not switched on for this website yet. The site's team can ask the assistant's operator to " +
      "add " + location.origin + " to the hospital's allowed sites.";
  var elsewhere = lang === "zh" ? "在新标签页中打开通用版助手" : "Open the general assistant in a new tab";

  // white or near-black text, whichever reads better on the hospital's colour (WCAG relative luminance)
  function readableOn(hex) {
    var digits = hex.slice(1);
    if (digits.length < 6) { digits = digits.split("").map(function (d) { return d + d; }).join(""); }
    var channels = [0, 2, 4].map(function (i) {
      var c = parseInt(digits.slice(i, i + 2), 16) / 255;
      return c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4);
    });
    var luminance = 0.2126 * channels[0] + 0.7152 * channels[1] + 0.0722 * channels[2];
    return (1.05 / (luminance + 0.05)) >= ((luminance + 0.05) / 0.0575) ? "#fff" : "#111";
  }

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
      ".launcher{all:initial;display:flex;align-items:center;gap:8px;cursor:pointer;background:" + color + ";color:" + ink + ";" +
      "font:600 15px/1.2 system-ui,-apple-system,'Segoe UI',sans-serif;padding:12px 18px;border-radius:24px;" +
      "box-shadow:0 4px 14px rgba(0,0,0,.25)}" +
      ".launcher:focus-visible{outline:3px solid #111;outline-offset:2px}" +
      ".panel{all:initial;display:none;position:absolute;bottom:60px;" + side + ":0;width:min(420px,calc(100vw - 40px));" +
      "height:min(640px,calc(100vh - 100px));background:#fff;border-radius:12px;overflow:hidden;" +
      "box-shadow:0 8px 30px rgba(0,0,0,.3)}" +
      ".panel.open{display:flex;flex-direction:column}" +
      ".bar{all:initial;display:flex;align-items:center;justify-content:space-between;gap:8px;background:" + color +
      ";color:" + ink + ";font:600 15px/1.2 system-ui,-apple-system,'Segoe UI',sans-serif;padding:8px 10px 8px 14px}" +
      ".close{all:initial;cursor:pointer;font:700 22px/1 system-ui,sans-serif;color:" + ink + ";width:32px;height:32px;" +
      "text-align:center;border-radius:50%}" +
      ".close:focus-visible{outline:3px solid " + ink + "}" +
      ".notice{all:initial;display:block;padding:18px 16px;font:15px/1.5 system-ui,-apple-system,'Segoe UI',sans-serif;" +
      "color:#1f2328}" +
      ".notice a{color:#0b57d0;text-decoration:underline;display:inline-block;margin-top:10px}" +
      "iframe{all:initial;display:block;width:100%;flex:1;border:0}";
    var panel = document.createElement("div");
    panel.className = "panel";
    panel.setAttribute("role", "dialog");
    panel.setAttribute("aria-label", label);
    var bar = document.createElement("div");
    bar.className = "bar";
    var title = document.createElement("span");
    title.textContent = label;
    var close = document.createElement("button");
    close.className = "close";
    close.setAttribute("aria-label", lang === "zh" ? "关闭" : "Close");
    close.textContent = "\u00d7";
    bar.appendChild(title);
    bar.appendChild(close);
    var button = document.createElement("button");
    button.className = "launcher";
    button.setAttribute("aria-expanded", "false");
    button.textContent = label;
    var frame = null;

    function openChat() {
      frame = document.createElement("iframe");
      frame.title = label;
      frame.src = origin + "/embed/?hospital=" + encodeURIComponent(hospital) + (lang ? "&lang=" + lang : "");
      frame.setAttribute("referrerpolicy", "strict-origin");
      panel.appendChild(frame);
    }

    // A site missing from the hospital's allow-list would get a blank frame (the browser refuses it and says why
    // only in the console): ask first, and say it in the panel. If the question itself fails, try the chat.
    function openChatIfAllowed() {
      frame = "asking";
      fetch(origin + "/widget/allowed?hospital=" + encodeURIComponent(hospital))
        .then(function (response) { return response.json(); })
        .then(function (answer) { if (answer.allowed) { openChat(); } else { explain(); } },
              function () { openChat(); });
    }

    function explain() {
      var notice = document.createElement("div");
      notice.className = "notice";
      notice.setAttribute("role", "status");
      notice.textContent = notAllowed;
      var link = document.createElement("a");
      link.href = origin + "/";
      link.target = "_blank";
      link.rel = "noopener";
      link.textContent = elsewhere;
      notice.appendChild(document.createElement("br"));
      notice.appendChild(link);
      panel.appendChild(notice);
    }

    function toggle(open) {
      if (open && !frame) { openChatIfAllowed(); }
      panel.classList.toggle("open", open);
      button.setAttribute("aria-expanded", open ? "true" : "false");
    }
    button.addEventListener("click", function () { toggle(!panel.classList.contains("open")); });
    close.addEventListener("click", function () { toggle(false); button.focus(); });
    panel.appendChild(bar);
    root.appendChild(style);
    root.appendChild(panel);
    root.appendChild(button);
    document.body.appendChild(host);
  }

  if (document.body) { mount(); } else { document.addEventListener("DOMContentLoaded", mount); }
})();
