// RUN: cse
// An op in a region reuses an equal op from above the region. Sibling regions (a cond's
// branches, a while's before and do regions) share nothing, and what a region computes
// is not reused after it.
func.func @main(%p: tensor<i1>, %x: tensor<f64>) -> (tensor<f64>, tensor<f64>, tensor<f64>) {
  %outer = "gj.exp"(%x) : (tensor<f64>) -> tensor<f64>
  %r = "gj.cond"(%p) ({
    %e = "gj.exp"(%x) : (tensor<f64>) -> tensor<f64>
    %t1 = "gj.tanh"(%x) : (tensor<f64>) -> tensor<f64>
    %t2 = "gj.tanh"(%x) : (tensor<f64>) -> tensor<f64>
    %y = "gj.add"(%e, %t2) : (tensor<f64>, tensor<f64>) -> tensor<f64>
    %y1 = "gj.add"(%y, %t1) : (tensor<f64>, tensor<f64>) -> tensor<f64>
    "gj.yield"(%y1) : (tensor<f64>) -> ()
  }, {
    %t3 = "gj.tanh"(%x) : (tensor<f64>) -> tensor<f64>
    "gj.yield"(%t3) : (tensor<f64>) -> ()
  }) : (tensor<i1>) -> tensor<f64>
  %after = "gj.tanh"(%x) : (tensor<f64>) -> tensor<f64>
  %w = "gj.while"(%r) ({
  ^bb0(%a: tensor<f64>):
    %n1 = "gj.neg"(%x) : (tensor<f64>) -> tensor<f64>
    %go = "gj.less"(%a, %n1) : (tensor<f64>, tensor<f64>) -> tensor<i1>
    "gj.condition"(%go) : (tensor<i1>) -> ()
  }, {
  ^bb0(%b: tensor<f64>):
    %n2 = "gj.neg"(%x) : (tensor<f64>) -> tensor<f64>
    %next = "gj.add"(%b, %n2) : (tensor<f64>, tensor<f64>) -> tensor<f64>
    "gj.yield"(%next) : (tensor<f64>) -> ()
  }) : (tensor<f64>) -> tensor<f64>
  func.return %outer, %after, %w : tensor<f64>, tensor<f64>, tensor<f64>
}
// CHECK:      [[OUTER:%[0-9]+]] = "gj.exp"(%arg1
// CHECK-NEXT: "gj.cond"(%arg0
// CHECK-NEXT:   [[T1:%[0-9]+]] = "gj.tanh"(%arg1
// CHECK-NEXT:   [[Y:%[0-9]+]] = "gj.add"([[OUTER]], [[T1]]
// CHECK-NEXT:   [[Y1:%[0-9]+]] = "gj.add"([[Y]], [[T1]]
// CHECK-NEXT:   "gj.yield"([[Y1]]
// CHECK-NEXT: }, {
// CHECK-NEXT:   [[T3:%[0-9]+]] = "gj.tanh"(%arg1
// CHECK-NEXT:   "gj.yield"([[T3]]
// CHECK-NEXT: }
// CHECK-NEXT: [[AFTER:%[0-9]+]] = "gj.tanh"(%arg1
// CHECK:      ^bb0(
// CHECK-NEXT:   "gj.neg"(%arg1
// CHECK:      }, {
// CHECK-NEXT: ^bb0(
// CHECK-NEXT:   "gj.neg"(%arg1
// CHECK:      func.return [[OUTER]], [[AFTER]]
