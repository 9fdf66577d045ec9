"""The report's inline stylesheet and its one small script (hover details).

Invariants: no external resource of any kind (fonts, images, scripts): the
page must open from disk with no network. Colours are defined once here as
CSS variables; charts refer to them by class only.
"""

CSS = """
:root{--ok:#2f9e44;--fail:#adb5bd;--info:#f08c00;--bad:#e03131;--ink:#212529;--muted:#6c757d;
--line:#dee2e6;--bg:#f8f9fa;--card:#fff;--kill:#ffa8a8;--pause:#d0bfff;--partition:#a5d8ff;
--net:#96f2d7;--other:#ffec99}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;
color:var(--ink);background:var(--bg)}
main{max-width:1200px;margin:0 auto;padding:18px 20px 60px}
h1{font-size:22px;margin:0 0 2px}h2{font-size:17px;margin:28px 0 6px;padding-top:6px;border-top:1px solid var(--line)}
h3{font-size:15px;margin:14px 0 4px}h4{font-size:13px;margin:14px 0 4px;color:#343a40}
code,pre,.log{font:12.5px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
a{color:#1864ab}
.muted{color:var(--muted)}
.short{font-size:14.5px;margin:4px 0 10px;padding:8px 12px;background:var(--card);border-left:4px solid #adb5bd;border-radius:4px}
.banner{border-radius:8px;padding:14px 18px;margin:10px 0 14px;color:#fff;display:flex;gap:18px;align-items:center}
.banner .big{font-size:26px;font-weight:700;letter-spacing:.3px;white-space:nowrap}
.banner .why{font-size:15px}
.banner.valid{background:#2b8a3e}.banner.invalid{background:#c92a2a}.banner.unknown{background:#e67700}
.meta{display:grid;grid-template-columns:repeat(auto-fill,minmax(150px,1fr));gap:6px 14px;margin:8px 0}
.meta div{background:var(--card);border:1px solid var(--line);border-radius:6px;padding:6px 9px}
.meta b{display:block;font-size:11px;text-transform:uppercase;color:var(--muted);font-weight:600;letter-spacing:.4px}
.cmd{display:flex;gap:8px;align-items:center;margin:8px 0}
.cmd pre{flex:1;margin:0;background:#212529;color:#f1f3f5;padding:8px 12px;border-radius:6px;overflow-x:auto}
.links a{margin-right:12px}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:10px 12px;margin:8px 0;overflow-x:auto}
svg.chart{display:block;max-width:100%;height:auto}
.card.cols{gap:8px}.card.cols svg.half{flex:1 1 0;min-width:0;width:49%}
.cols{display:flex;gap:24px;flex-wrap:wrap}.cols>div{flex:1;min-width:300px}
.legend{display:flex;flex-wrap:wrap;gap:4px 16px;font-size:12.5px;color:#495057;margin:4px 0}
.key{display:inline-flex;align-items:center;gap:5px}
i.sw{display:inline-block;width:14px;height:10px;border-radius:2px;vertical-align:middle;margin-right:4px;background:#ccc}
i.sw.ok{background:var(--ok)}i.sw.fail{background:var(--fail)}i.sw.info{background:var(--info)}
i.sw.witness{background:#fff;border:2px solid var(--bad)}
i.sw.band-kill{background:var(--kill)}i.sw.band-pause{background:var(--pause)}i.sw.band-partition{background:var(--partition)}
i.sw.band-net{background:var(--net)}i.sw.band-other,i.sw.band-clock,i.sw.band-disk{background:var(--other)}
.anomaly{background:#fff5f5;border:1px solid #ffc9c9;border-radius:8px;padding:6px 14px 12px;margin:10px 0}
.sentence{font-size:15px;font-weight:600;color:#862e2e}
table{border-collapse:collapse;font-size:13px;background:var(--card)}
th,td{text-align:left;padding:4px 10px;border-bottom:1px solid var(--line);white-space:nowrap}
th{font-size:11.5px;text-transform:uppercase;color:var(--muted);letter-spacing:.3px}
td.num,th.num{text-align:right}td.wrap{white-space:normal;max-width:340px}
.bar{display:inline-block;width:70px;height:8px;background:#f1f3f5;border-radius:4px;margin-right:6px;vertical-align:middle}
.bar i{display:block;height:8px;border-radius:4px;background:var(--ok)}
ul.plain{list-style:none;padding:0;margin:4px 0}ul.plain li{margin:3px 0}
.log{background:#212529;color:#dee2e6;border-radius:6px;padding:6px 10px;white-space:pre-wrap;overflow-x:auto;margin:4px 0 8px}
.log .rel{color:#74c0fc;display:inline-block;min-width:76px}
.log .now{color:#ff8787;font-weight:700}
details summary{cursor:pointer;font-weight:600;margin-top:6px}details summary a{font-weight:400;font-size:12px;margin-left:8px}
.verdict{font-weight:700}.verdict.valid{color:#2b8a3e}.verdict.invalid{color:#c92a2a}.verdict.unknown{color:#e67700}
#tip{position:fixed;pointer-events:none;background:rgba(33,37,41,.94);color:#fff;padding:6px 9px;border-radius:5px;
font:12px/1.4 ui-monospace,Menlo,Consolas,monospace;white-space:pre;z-index:10;display:none;max-width:520px}
/* svg */
.lane{fill:#f1f3f5}
.lab{font-size:11px;fill:#495057}.lab.strong{font-weight:700;fill:#212529}
.tick{font-size:10.5px;fill:#6c757d}
.grid{stroke:#e9ecef;stroke-width:1}.axis{stroke:#adb5bd;stroke-width:1}
.band{opacity:.4}.band:hover{opacity:.6}
.band-kill{fill:var(--kill)}.band-pause{fill:var(--pause)}.band-partition{fill:var(--partition)}
.band-net{fill:var(--net)}.band-other,.band-clock,.band-disk{fill:var(--other)}
.band-label{font-size:10.5px;fill:#495057;font-weight:600}
.op.ok,.pt.ok,.area.ok{fill:var(--ok)}.op.fail,.pt.fail,.area.fail{fill:var(--fail)}
.op.info,.pt.info,.area.info{fill:var(--info)}
.op.mute{pointer-events:none}.op.open{opacity:.6}
.op:hover,.pt:hover{stroke:#000;stroke-width:1}
.op.witness{stroke:var(--bad);stroke-width:2.5}
.pt{opacity:.75}.pt.dense{opacity:1}.pt.witness{stroke:var(--bad);stroke-width:2.5;opacity:1}
.area{opacity:.85}.hit{fill:transparent}.hit:hover{fill:rgba(0,0,0,.06)}
.seg{stroke:#fff;stroke-width:.5}
.role-leader{fill:#1971c2}.role-follower{fill:#a5d8ff}.role-candidate{fill:#fcc419}
.role-down{fill:#343a40}.role-paused{fill:#da77f2}.role-unknown{fill:#e9ecef}.role-none{fill:#ffe3e3}
i.sw.role-leader{background:#1971c2}i.sw.role-follower{background:#a5d8ff}i.sw.role-candidate{background:#fcc419}
i.sw.role-down{background:#343a40}i.sw.role-paused{background:#da77f2}i.sw.role-unknown{background:#e9ecef}
i.sw.role-none{background:#ffe3e3}
.seglab{font-size:10.5px;fill:#fff;pointer-events:none;font-weight:600}.seglab.on-dark{fill:#fff}
.band.solid{opacity:1}.strip-label{font-size:10px;fill:#343a40;pointer-events:none}
.seglab.role-follower,.seglab.role-candidate,.seglab.role-unknown{fill:#1c3a5e}.seglab.role-paused{fill:#3c1053}.seglab.role-none{fill:#c92a2a}
.c0{fill:#1971c2;stroke:#1971c2}.c1{fill:#e8590c;stroke:#e8590c}.c2{fill:#2f9e44;stroke:#2f9e44}
.c3{fill:#5f3dc4;stroke:#5f3dc4}.c4{fill:#c2255c;stroke:#c2255c}.c5{fill:#0c8599;stroke:#0c8599}
.c6{fill:#5c940d;stroke:#5c940d}.c7{fill:#495057;stroke:#495057}
i.sw.c0{background:#1971c2}i.sw.c1{background:#e8590c}i.sw.c2{background:#2f9e44}i.sw.c3{background:#5f3dc4}
i.sw.c4{background:#c2255c}i.sw.c5{background:#0c8599}i.sw.c6{background:#5c940d}i.sw.c7{background:#495057}
.seg.c0,.seg.c1,.seg.c2,.seg.c3,.seg.c4,.seg.c5,.seg.c6,.seg.c7{stroke:#fff}
.line{fill:none;stroke-width:1.6}.line:hover{stroke-width:3}
.mark{stroke:var(--bad);stroke-width:1.5;stroke-dasharray:4 3}.marklab{font-size:11px;fill:var(--bad);font-weight:700}
.wop{stroke-width:1.5}.wop.placed{fill:#d3f9d8;stroke:#2f9e44}.wop.stuck{fill:#ffc9c9;stroke:var(--bad);stroke-width:2.5}
.wop.other{fill:#f1f3f5;stroke:#adb5bd}.wop.concurrent{fill:#fff3bf;stroke:#f08c00}
i.sw.wop.concurrent{background:#fff3bf;border:1.5px solid #f08c00}
i.sw.wop.placed{background:#d3f9d8;border:1.5px solid #2f9e44}i.sw.wop.stuck{background:#ffc9c9;border:2px solid #e03131}
i.sw.wop.other{background:#f1f3f5;border:1.5px solid #adb5bd}
i.sw.lin-sw{height:3px;background:#1864ab}i.sw.msg-sw{height:2px;background:#495057}
i.sw.msg-drop{height:2px;background:var(--bad)}i.sw.mark-sw{height:2px;background:var(--bad)}
.wlab{font-size:11.5px;fill:#212529;pointer-events:none}.wlab.stuck{font-weight:700;fill:#862e2e}
.lin{fill:none;stroke:#1864ab;stroke-width:1.5;stroke-dasharray:3 2}.lin.fail{stroke:var(--bad)}
.gap{stroke:#868e96;stroke-width:1;stroke-dasharray:2 3}.gaplab{font-size:10px;fill:#868e96}
.lin,.linpt,.x-mark,.band-label,.tick,.lab,.lane,.grid,.axis,.lifeline,.gap,.gaplab,.strip-label{pointer-events:none}
.linpt{fill:#1864ab}.x-mark{font-size:18px;font-weight:700;fill:var(--bad)}.x-mark.small{font-size:13px}
.msglab{font-size:9.5px;fill:#868e96;pointer-events:none}.lifeline{stroke:#ced4da;stroke-width:1.5}.msg{stroke:#495057;stroke-width:1}.msg:hover{stroke-width:2.5}
.msg.dropped{stroke:var(--bad);stroke-dasharray:3 2}.arrowhead{fill:#495057}
.runs td a{font-weight:600}
"""

# Shows an element's data-tip next to the pointer. Delegated to the document so
# that charts with thousands of shapes need no per-shape listeners.
JS = """
(function(){
  var tip=document.getElementById('tip');
  if(!tip)return;
  document.addEventListener('mousemove',function(e){
    var t=e.target&&e.target.closest?e.target.closest('[data-tip]'):null;
    if(!t){tip.style.display='none';return;}
    tip.textContent=t.getAttribute('data-tip');
    tip.style.display='block';
    var w=tip.offsetWidth,h=tip.offsetHeight,x=e.clientX+14,y=e.clientY+14;
    if(x+w>window.innerWidth-4)x=e.clientX-w-14;
    if(y+h>window.innerHeight-4)y=e.clientY-h-14;
    tip.style.left=x+'px';tip.style.top=y+'px';
  });
  document.addEventListener('mouseleave',function(){tip.style.display='none';});
  var copy=document.getElementById('copy-cmd');
  if(copy)copy.addEventListener('click',function(){
    var txt=document.getElementById('cmd').textContent;
    if(navigator.clipboard&&navigator.clipboard.writeText){
      navigator.clipboard.writeText(txt).then(function(){copy.textContent='copied';},function(){});
    }
  });
})();
"""
