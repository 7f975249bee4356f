/* labbot dashboard: live updates, no build step, no dependencies.
 *
 * Contract. An element carrying data-live="<url>" has its content replaced, every
 * data-live-interval milliseconds (default 2000), by the HTML fragment the server answers at
 * <url> (a GET with the header "X-Labbot-Live: 1"; the server renders it with autoescaping, so
 * it is inserted as it is).
 *  - A response with the header "X-Live-Final: 1" is the last: it is shown, then the element
 *    stops refreshing (data-live is removed), e.g. once a job has finished.
 *  - Nothing is fetched while the tab is hidden; coming back refreshes at once.
 *  - No request overlaps another for the same element. After an error (an HTTP error, a
 *    redirect such as to the sign-in page, an answer that is not text/html, no network) the
 *    element keeps its content, gets the attribute data-live-stale, and is retried with a
 *    growing delay (up to 30 s); the next good answer removes the attribute.
 *  - While text inside the element is selected it is not replaced (copying a log works).
 *  - A <pre data-live-follow> scrolled to its end stays at its end when replaced.
 */
(function () {
  "use strict";
  var DEFAULT_INTERVAL = 2000;
  var MAX_DELAY = 30000;
  var watched = [];

  function selectionInside(element) {
    var selection = window.getSelection && window.getSelection();
    return Boolean(
      selection && !selection.isCollapsed && selection.anchorNode &&
      element.contains(selection.anchorNode)
    );
  }

  function followed(element) {
    var pre = element.querySelector("pre[data-live-follow]");
    return pre !== null && pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
  }

  function watch(element) {
    var interval = parseInt(element.getAttribute("data-live-interval"), 10) || DEFAULT_INTERVAL;
    var state = { element: element, timer: null, busy: false, delay: interval };

    function schedule(ms) {
      clearTimeout(state.timer);
      state.timer = setTimeout(refresh, ms);
    }

    function refresh() {
      var url = element.getAttribute("data-live");
      if (!url || !element.isConnected || state.busy) {
        return;
      }
      if (document.hidden) {
        return; // visibilitychange starts it again
      }
      if (selectionInside(element)) {
        schedule(interval);
        return;
      }
      state.busy = true;
      fetch(url, {
        headers: { "X-Labbot-Live": "1", "Accept": "text/html" },
        credentials: "same-origin",
        cache: "no-store",
      })
        .then(function (response) {
          // A redirect (to the sign-in, say) or anything but HTML is no fragment.
          var type = response.headers.get("Content-Type") || "";
          if (!response.ok || response.redirected || type.indexOf("text/html") !== 0) {
            throw new Error("HTTP " + response.status);
          }
          var final = response.headers.get("X-Live-Final") === "1";
          return response.text().then(function (html) {
            return { html: html, final: final };
          });
        })
        .then(function (answer) {
          state.busy = false;
          var atEnd = followed(element);
          element.innerHTML = answer.html;
          element.removeAttribute("data-live-stale");
          if (atEnd) {
            var pre = element.querySelector("pre[data-live-follow]");
            if (pre) {
              pre.scrollTop = pre.scrollHeight;
            }
          }
          state.delay = interval;
          if (answer.final) {
            element.removeAttribute("data-live");
            return;
          }
          schedule(interval);
        })
        .catch(function () {
          state.busy = false;
          element.setAttribute("data-live-stale", "");
          state.delay = Math.min(state.delay * 2, MAX_DELAY);
          schedule(state.delay);
        });
    }

    state.refresh = refresh;
    watched.push(state);
    var pre = element.querySelector("pre[data-live-follow]");
    if (pre) {
      pre.scrollTop = pre.scrollHeight; // a log opens at its end
    }
    schedule(interval);
  }

  document.addEventListener("visibilitychange", function () {
    if (document.hidden) {
      return;
    }
    watched.forEach(function (state) {
      if (!state.busy && state.element.hasAttribute("data-live")) {
        clearTimeout(state.timer);
        state.refresh();
      }
    });
  });

  function start() {
    Array.prototype.forEach.call(document.querySelectorAll("[data-live]"), watch);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
