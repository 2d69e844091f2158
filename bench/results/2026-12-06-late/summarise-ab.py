import sys,collections,statistics
d=collections.defaultdict(list)
for l in sys.stdin:
  f=l.split()
  if len(f)<5: print(l.strip()); continue
  d[f[0]].append((float(f[1]),float(f[4])))
for v,x in d.items():
  t=sorted(a for a,_ in x); b=sorted(c for _,c in x)
  print(v,'Mmsg/s',t[0],statistics.median(t),t[-1],' broker us/msg',b[0],statistics.median(b),b[-1])
