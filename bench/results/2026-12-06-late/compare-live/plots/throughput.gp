set terminal pngcairo size 1400,640 font 'sans,10'
set output 'throughput.png'
set title 'Messages delivered per second (median of the runs; bars: min to max)'
set datafile missing '?'
set style data histogram
set style histogram errorbars gap 2 lw 1
set style fill solid 0.8 border -1
set ylabel 'messages/s'
set format y '%.1s%c'
set yrange [0:*]
set grid ytics
set key top right
set xtics rotate by 20 right noenhanced
set bmargin 12
set lmargin 26
plot 'throughput.dat' using 2:3:4:xtic(1) title "brook", \
     'throughput.dat' using 5:6:7 title "mqtt", \
     'throughput.dat' using 8:9:10 title "nats", \
     'throughput.dat' using 11:12:13 title "redis", \
     'throughput.dat' using 14:15:16 title "raw-ring"
